"""Decode one image file into upright grayscale pixels of the target size."""

import io
import os
import stat

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ._dicom import HEADER_BYTES, is_dicom, read_dicom
from ._errors import UnreadableImage
from ._jpeg import JPEG_START, decode_plain_jpeg, jpeg_frame, plain_jpeg_size

_RESAMPLE = Image.Resampling.BILINEAR

# Shrinking by an integer factor first, then resampling the last factor of at most 3,
# is several times faster and indistinguishable from one resampling pass.
_REDUCING_GAP = 3.0

# EXIF orientations 5 to 8 turn the picture by a quarter, swapping width and height.
_ORIENTATIONS_THAT_SWAP_AXES = frozenset({5, 6, 7, 8})

# PIL warns above MAX_IMAGE_PIXELS and raises above twice that; a program that turns
# warnings into errors gets the warning raised.
_DECOMPRESSION_BOMB_SIGNALS = (
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


# A JPEG's header (markers, tables, EXIF, colour profile) lies in its first bytes,
# and its compressed picture takes at most a few bytes per sample: a file far
# beyond both is padded or damaged, and decoding it would scan it all.
_JPEG_HEAD_BYTES = 16 * 1024**2
_MAX_JPEG_BYTES_PER_SAMPLE = 8

# Bytes of a file read at once before its format is known.
_FIRST_READ_BYTES = 256 * 1024


def _describe_file_error(error):
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return "file not found"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    return f"cannot be opened ({error.strerror or error})"


def stat_image_file(path):
    """Return ``os.stat(path)`` for a non-empty regular file, else say why not."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UnreadableImage("broken symbolic link (no such target)") from None
        raise UnreadableImage("file not found") from None
    except OSError as error:
        raise UnreadableImage(_describe_file_error(error)) from None
    if stat.S_ISDIR(status.st_mode):
        raise UnreadableImage("is a directory")
    if not stat.S_ISREG(status.st_mode):
        raise UnreadableImage("not a regular file")
    if status.st_size == 0:
        raise UnreadableImage("empty file")
    return status


def fitted_size(size, target_hw):
    """Largest ``(width, height)`` with the aspect of ``size`` that fits the target."""
    width, height = size
    target_h, target_w = target_hw
    scale = min(target_w / width, target_h / height)
    fitted_w = min(target_w, max(1, round(width * scale)))
    fitted_h = min(target_h, max(1, round(height * scale)))
    return fitted_w, fitted_h


def output_size(size, target_hw, resize):
    """``(width, height)`` the picture itself takes in the output."""
    if resize == "pad":
        return fitted_size(size, target_hw)
    target_h, target_w = target_hw
    return target_w, target_h


def _check_pixel_count(img):
    limit = Image.MAX_IMAGE_PIXELS
    n_pixels = img.width * img.height
    if limit is not None and n_pixels > limit:
        raise UnreadableImage(
            f"too many pixels ({img.width} x {img.height} = {n_pixels} > "
            f"PIL.Image.MAX_IMAGE_PIXELS = {limit}); possible decompression bomb"
        )


def _request_jpeg_downscale(img, target_hw, resize):
    """Let a JPEG decode straight to grayscale at a reduced scale (DCT domain).

    ``draft`` only divides by powers of two and never goes below the size asked for,
    so the final resampling still sees at least as many pixels as it produces.
    """
    if img.format not in ("JPEG", "MPO"):
        return
    orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    swaps_axes = orientation in _ORIENTATIONS_THAT_SWAP_AXES
    shown_size = img.size[::-1] if swaps_axes else img.size
    needed_size = output_size(shown_size, target_hw, resize)
    img.draft("L", needed_size[::-1] if swaps_axes else needed_size)


def _float_image(values):
    return Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))


def _rescale_to_unit_range(values):
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros(values.shape, dtype=np.float32)
    return (values.astype(np.float32) - low) / (high - low)


def _scale_32_bit_integers(values):
    if values.min() >= 0 and values.max() <= 65535:
        return values.astype(np.float32) / 65535
    return _rescale_to_unit_range(values)


def _scale_floats(values):
    if not np.isfinite(values).all():
        raise UnreadableImage("contains NaN or infinite pixel values")
    if values.min() >= 0 and values.max() <= 1:
        return values
    return _rescale_to_unit_range(values)


def _composite_on_black(img):
    rgba = img.convert("RGBA")
    composite = Image.new("L", rgba.size, 0)
    composite.paste(rgba.convert("L"), mask=rgba.getchannel("A"))
    return composite


def to_grayscale(img):
    """Return ``img`` as an 8-bit "L" image, or an "F" image with values in [0, 1]."""
    mode = img.mode
    if mode.startswith("I;16"):
        return _float_image(np.asarray(img, dtype=np.float32) / 65535)
    if mode == "I":
        return _float_image(_scale_32_bit_integers(np.asarray(img)))
    if mode == "F":
        return _float_image(_scale_floats(np.asarray(img)))
    if img.has_transparency_data:
        return _composite_on_black(img)
    if mode == "L":
        return img
    try:
        return img.convert("L")
    except ValueError:
        raise UnreadableImage(f"unsupported image mode {mode!r}") from None


def _decode_plain_jpeg(data, target_hw, resize):
    """The fast path of :mod:`._jpeg`, for files it takes and sizes PIL allows."""
    size = plain_jpeg_size(data)
    limit = Image.MAX_IMAGE_PIXELS
    if size is None or (limit is not None and size[0] * size[1] > limit):
        return None
    return decode_plain_jpeg(data, size, output_size(size, target_hw, resize))


def _read_plausible_jpeg(file, start, size):
    """The whole JPEG file, once its header and size show it is a real one.

    ``start`` holds the file's first bytes: all of it when it is small.
    """
    head = start
    if len(head) < min(size, _JPEG_HEAD_BYTES):
        file.seek(0)
        head = file.read(_JPEG_HEAD_BYTES)
    frame = jpeg_frame(head)
    if frame is None and len(head) < _JPEG_HEAD_BYTES:
        raise UnreadableImage("corrupt or truncated JPEG (its header ends early)")
    if frame is None:
        raise UnreadableImage(
            "corrupt JPEG (no complete header in its first "
            f"{_JPEG_HEAD_BYTES // 1024**2} MiB)"
        )
    width, height, n_channels = frame
    if size > _JPEG_HEAD_BYTES + _MAX_JPEG_BYTES_PER_SAMPLE * width * height * (
        n_channels
    ):
        raise UnreadableImage(
            f"implausibly large for a {width} x {height} JPEG ({size} bytes); "
            "padded or damaged"
        )
    if len(head) >= size:
        return head
    file.seek(0)
    return file.read()


def _open_grayscale(file, start, size, path, target_hw, resize):
    """Decode the image in ``file``, upright, as an "L" or a normalised "F" image.

    ``start`` holds the file's first bytes and ``size`` its length. ``target_hw``
    and ``resize`` let a JPEG decode at a reduced scale; None decodes it at full
    size.
    """
    head = start[:HEADER_BYTES]
    if head.startswith(JPEG_START):
        data = _read_plausible_jpeg(file, start, size)
        gray = (
            None if target_hw is None else _decode_plain_jpeg(data, target_hw, resize)
        )
        if gray is not None:
            return gray
        file = io.BytesIO(data)
    file.seek(0)
    if is_dicom(path, head):
        return _float_image(read_dicom(file, path, head, Image.MAX_IMAGE_PIXELS))
    with Image.open(file) as img:
        _check_pixel_count(img)
        if target_hw is not None:
            _request_jpeg_downscale(img, target_hw, resize)
        # Decoding here, inside the caller's error handling, is what detects
        # truncated files: Image.open only reads the header.
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        return to_grayscale(img)


def _is_whole_file(start):
    """Whether ``start``, from :func:`read_start`, holds its whole file."""
    return start is not None and len(start) < _FIRST_READ_BYTES


def read_start(path):
    """The first bytes of an image file, in one read: all of a small file.

    Reading many files first, then decoding them, keeps decoding threads from
    handing each other the interpreter lock at every read.

    Raises
    ------
    UnreadableImage
        If the file cannot be opened or read.
    """
    try:
        with open(path, "rb") as file:
            return file.read(_FIRST_READ_BYTES)
    except OSError as error:
        raise UnreadableImage(_describe_file_error(error)) from None


def _describe_decoding_error(error):
    if isinstance(error, UnidentifiedImageError):
        return "not an image (unrecognised format)"
    if isinstance(error, _DECOMPRESSION_BOMB_SIGNALS):
        return f"too many pixels; possible decompression bomb ({error})"
    if isinstance(error, OSError) and "truncated" in str(error):
        return "truncated image file"
    if isinstance(error, OSError) and error.errno is not None:
        return _describe_file_error(error)
    return f"corrupt or unsupported image ({type(error).__name__}: {error})"


def _resized(img, size):
    if img.size == size:
        return img
    return img.resize(size, _RESAMPLE, reducing_gap=_REDUCING_GAP)


def read_grayscale(path, target_hw=None, resize="stretch", start=None):
    """Read one image file, upright, as an "L" or a normalised "F" PIL image.

    With ``target_hw`` a JPEG may decode at a reduced scale that still covers the
    target; without it every file is read at full size. ``start``, the file's
    first bytes from :func:`read_start`, spares reading a small file again.
    """
    try:
        if _is_whole_file(start):
            file = io.BytesIO(start)
            return _open_grayscale(file, start, len(start), path, target_hw, resize)
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            start = file.read(_FIRST_READ_BYTES)
            return _open_grayscale(file, start, size, path, target_hw, resize)
    # A missing optional dependency concerns every file, not this one.
    except (UnreadableImage, MemoryError, ImportError):
        raise
    # A damaged file can make a decoder fail in many ways; each becomes a reason.
    except Exception as error:
        raise UnreadableImage(_describe_decoding_error(error)) from None


def decode_image(path, target_hw, resize, start=None):
    """Read one image file and bring it to the target size.

    ``start`` is as for :func:`read_grayscale`.

    Returns
    -------
    pixels : ndarray of shape target_hw
        ``uint8`` for 8-bit sources (to be divided by 255), else ``float32`` in [0, 1].
    """
    gray = None
    if _is_whole_file(start):
        # A plain JPEG read whole needs none of the general way's checks.
        gray = _decode_plain_jpeg(start, target_hw, resize)
    if gray is None:
        gray = read_grayscale(path, target_hw, resize, start)
    picture_size = output_size(gray.size, target_hw, resize)
    picture = np.asarray(_resized(gray, picture_size))
    if resize == "stretch":
        return picture
    canvas = np.zeros(target_hw, dtype=picture.dtype)
    top = (target_hw[0] - picture.shape[0]) // 2
    left = (target_hw[1] - picture.shape[1]) // 2
    canvas[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    return canvas
