"""Turn image files into arrays a convolutional network can take.

:class:`ImageLoader` is a stateless scikit-learn transformer that reads a sequence of
image paths and returns a ``float32`` array of shape ``(n_images, height, width, 1)``
with values in ``[0, 1]``. Decoded images are kept in a process-wide cache, bounded in
bytes, so that cross-validation and hyper-parameter searches, which load the same files
again and again, decode each file only once; see :func:`set_cache_limit`,
:func:`clear_cache` and :func:`cache_info`.
"""

import io
import os
import stat
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import ClassVar, NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)

__all__ = [
    "DEFAULT_CACHE_LIMIT",
    "CacheInfo",
    "ImageLoadError",
    "ImageLoader",
    "cache_info",
    "clear_cache",
    "set_cache_limit",
]

DEFAULT_CACHE_LIMIT = 512 * 1024**2
"""Default bound, in bytes, of the process-wide cache of decoded images (512 MiB)."""

_RESAMPLE = Image.Resampling.BILINEAR
# Shrinking by an integer factor first, then resampling the last factor of at most 3,
# is several times faster and indistinguishable from one resampling pass.
_REDUCING_GAP = 3.0
# EXIF orientations 5 to 8 turn the picture by a quarter, swapping width and height.
_ORIENTATIONS_THAT_SWAP_AXES = frozenset({5, 6, 7, 8})
_MAX_LISTED_INVALID_ENTRIES = 10
# Most files a decoding thread takes at once.
_MAX_BLOCK = 64
# Bytes of output that cached images are scaled to [0, 1] in at once.
_BLOCK_NBYTES = 4 * 1024**2
_JPEG_START = b"\xff\xd8"
# Segments a JPEG may hold and still be decoded without Image.open (see
# _decode_plain_jpeg): JFIF header, quantisation and Huffman tables, restart interval,
# comments. Any other (EXIF orientation, colour profiles, Adobe colour transforms,
# several frames) sends the file through Image.open.
_PLAIN_JPEG_SEGMENTS = frozenset({0xE0, 0xDB, 0xC4, 0xDD, 0xFE})
# Baseline, extended sequential and progressive frames, Huffman-coded.
_PLAIN_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
# PIL warns above MAX_IMAGE_PIXELS and raises above twice that; a program that turns
# warnings into errors gets the warning raised.
_DECOMPRESSION_BOMB_SIGNALS = (
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


class ImageLoadError(ValueError):
    """Raised when one or more image files cannot be read.

    The message lists every unreadable file with its reason, so that a whole data set
    can be repaired in one pass.

    Parameters
    ----------
    failures : list of (path, str) tuples
        Each unreadable file, as it was given, with the reason it could not be read.
    n_images : int
        How many images were requested in total.

    Attributes
    ----------
    failures : list of (path, str) tuples
        Each unreadable file with its reason, in input order.
    n_images : int
        How many images were requested in total.
    """

    def __init__(self, failures, n_images):
        self.failures = list(failures)
        self.n_images = n_images
        lines = [f"  {os.fspath(path)}: {reason}" for path, reason in self.failures]
        super().__init__(
            f"{len(self.failures)} of {n_images} images could not be read:\n"
            + "\n".join(lines)
        )

    def __reduce__(self):
        # Keeps the error picklable, as joblib workers send it back to the parent.
        return type(self), (self.failures, self.n_images)


class _UnreadableImage(Exception):
    """One file could not be read; ``reason`` says why in a few words."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------
# Process-wide cache of decoded, resized images
# ---------------------------------------------------------------------------------


class CacheInfo(NamedTuple):
    """Statistics of the image cache, as returned by :func:`cache_info`."""

    hits: int
    misses: int
    entries: int
    nbytes: int
    max_nbytes: int


class _ImageCache:
    """Thread-safe least-recently-used store of arrays, bounded in bytes."""

    def __init__(self, max_nbytes):
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self._max_nbytes = max_nbytes
        self._nbytes = 0
        self._hits = 0
        self._misses = 0

    def get_many(self, keys):
        """The arrays stored under ``keys``, None where absent."""
        with self._lock:
            arrays = [self._entries.get(key) for key in keys]
            for key, array in zip(keys, arrays, strict=True):
                if array is not None:
                    self._entries.move_to_end(key)
            n_found = sum(array is not None for array in arrays)
            self._hits += n_found
            self._misses += len(keys) - n_found
            return arrays

    def put(self, key, array):
        array.flags.writeable = False
        with self._lock:
            if array.nbytes > self._max_nbytes or key in self._entries:
                return
            self._entries[key] = array
            self._nbytes += array.nbytes
            self._evict()

    def set_limit(self, max_nbytes):
        with self._lock:
            previous = self._max_nbytes
            self._max_nbytes = max_nbytes
            self._evict()
            return previous

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._nbytes = self._hits = self._misses = 0

    def info(self):
        with self._lock:
            return CacheInfo(
                hits=self._hits,
                misses=self._misses,
                entries=len(self._entries),
                nbytes=self._nbytes,
                max_nbytes=self._max_nbytes,
            )

    def _evict(self):
        while self._nbytes > self._max_nbytes:
            _, evicted = self._entries.popitem(last=False)
            self._nbytes -= evicted.nbytes


_CACHE = _ImageCache(DEFAULT_CACHE_LIMIT)


def set_cache_limit(nbytes):
    """Bound the memory used by the process-wide cache of decoded images.

    Least recently used images are dropped until the cache fits the new bound.

    Parameters
    ----------
    nbytes : int
        Largest number of bytes the cached images may take together; ``0`` turns
        caching off for every :class:`ImageLoader`. The default is
        :data:`DEFAULT_CACHE_LIMIT` (512 MiB).

    Returns
    -------
    previous : int
        The bound in force before the call, so that it can be restored.

    Examples
    --------
    >>> from pneumoclf.preprocessing import set_cache_limit
    >>> previous = set_cache_limit(64 * 1024**2)
    >>> set_cache_limit(previous)
    67108864
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, Integral) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative integer; got {nbytes!r}.")
    return _CACHE.set_limit(int(nbytes))


def clear_cache():
    """Empty the process-wide cache of decoded images and reset its statistics.

    Examples
    --------
    >>> from pneumoclf.preprocessing import cache_info, clear_cache
    >>> clear_cache()
    >>> cache_info().entries
    0
    """
    _CACHE.clear()


def cache_info():
    """Report how the process-wide cache of decoded images is used.

    Returns
    -------
    info : CacheInfo
        Named tuple ``(hits, misses, entries, nbytes, max_nbytes)``: lookups that found
        an image, lookups that had to decode one, images held, bytes they take, and the
        bound set by :func:`set_cache_limit`.

    Examples
    --------
    >>> from pneumoclf.preprocessing import cache_info
    >>> cache_info().max_nbytes > 0
    True
    """
    return _CACHE.info()


# ---------------------------------------------------------------------------------
# Reading one image
# ---------------------------------------------------------------------------------


def _describe_os_error(error):
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return "file not found"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    return f"cannot be opened ({error.strerror or error})"


def _stat_image_file(path):
    """Return ``os.stat(path)`` for a non-empty regular file, else say why not."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise _UnreadableImage("broken symbolic link (no such target)") from None
        raise _UnreadableImage("file not found") from None
    except OSError as error:
        raise _UnreadableImage(_describe_os_error(error)) from None
    if stat.S_ISDIR(status.st_mode):
        raise _UnreadableImage("is a directory")
    if not stat.S_ISREG(status.st_mode):
        raise _UnreadableImage("not a regular file")
    if status.st_size == 0:
        raise _UnreadableImage("empty file")
    return status


def _fitted_size(size, target_hw):
    """Largest ``(width, height)`` with the aspect of ``size`` that fits the target."""
    width, height = size
    target_h, target_w = target_hw
    scale = min(target_w / width, target_h / height)
    fitted_w = min(target_w, max(1, round(width * scale)))
    fitted_h = min(target_h, max(1, round(height * scale)))
    return fitted_w, fitted_h


def _output_size(size, target_hw, resize):
    """``(width, height)`` the picture itself takes in the output."""
    if resize == "pad":
        return _fitted_size(size, target_hw)
    target_h, target_w = target_hw
    return target_w, target_h


def _check_pixel_count(img):
    limit = Image.MAX_IMAGE_PIXELS
    n_pixels = img.width * img.height
    if limit is not None and n_pixels > limit:
        raise _UnreadableImage(
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
    needed_size = _output_size(shown_size, target_hw, resize)
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
        raise _UnreadableImage("contains NaN or infinite pixel values")
    if values.min() >= 0 and values.max() <= 1:
        return values
    return _rescale_to_unit_range(values)


def _composite_on_black(img):
    rgba = img.convert("RGBA")
    composite = Image.new("L", rgba.size, 0)
    composite.paste(rgba.convert("L"), mask=rgba.getchannel("A"))
    return composite


def _to_grayscale(img):
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
        raise _UnreadableImage(f"unsupported image mode {mode!r}") from None


def _plain_jpeg_size(data):
    """``(width, height)`` of an 8-bit, 1- or 3-channel JPEG with no extra segments.

    Returns None for anything else, or for a file whose headers end early.
    """
    if not data.startswith(_JPEG_START):
        return None
    position = 2
    while position + 10 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in _PLAIN_JPEG_FRAMES:
            precision = data[position + 4]
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            n_channels = data[position + 9]
            if precision == 8 and n_channels in (1, 3) and width and height:
                return width, height
            return None
        if marker not in _PLAIN_JPEG_SEGMENTS:
            return None
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


def _decode_plain_jpeg(data, target_hw, resize):
    """Decode a plain JPEG straight to a reduced grayscale "L" image, or return None.

    The same decoder, scale and pixels as ``Image.open`` with ``draft``, without
    parsing the headers in Python: most of the cost of a small JPEG, and time for
    which the other decoding threads wait. Files this cannot take return None, so
    that ``Image.open`` reads them and names what is wrong with them.
    """
    size = _plain_jpeg_size(data)
    limit = Image.MAX_IMAGE_PIXELS
    if size is None or (limit is not None and size[0] * size[1] > limit):
        return None
    needed_w, needed_h = _output_size(size, target_hw, resize)
    # The scale JpegImageFile.draft chooses: the largest that keeps the needed size.
    ratio = min(size[0] // needed_w, size[1] // needed_h)
    scale = next((s for s in (8, 4, 2) if ratio >= s), 1)
    decoded_size = (-(-size[0] // scale), -(-size[1] // scale))
    try:
        return Image.frombytes("L", decoded_size, data, "jpeg", "L", "", scale, 0)
    except (OSError, ValueError):
        return None


def _open_grayscale(file, target_hw, resize):
    """Decode the image in ``file``, upright, as an "L" or a normalised "F" image."""
    if file.read(len(_JPEG_START)) == _JPEG_START:
        data = _JPEG_START + file.read()
        gray = _decode_plain_jpeg(data, target_hw, resize)
        if gray is not None:
            return gray
        file = io.BytesIO(data)
    file.seek(0)
    with Image.open(file) as img:
        _check_pixel_count(img)
        _request_jpeg_downscale(img, target_hw, resize)
        # Decoding here, inside the caller's error handling, is what detects
        # truncated files: Image.open only reads the header.
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        return _to_grayscale(img)


def _describe_decoding_error(error):
    if isinstance(error, UnidentifiedImageError):
        return "not an image (unrecognised format)"
    if isinstance(error, _DECOMPRESSION_BOMB_SIGNALS):
        return f"too many pixels; possible decompression bomb ({error})"
    if isinstance(error, OSError) and "truncated" in str(error):
        return "truncated image file"
    if isinstance(error, OSError) and error.errno is not None:
        return _describe_os_error(error)
    return f"corrupt or unsupported image ({type(error).__name__}: {error})"


def _resized(img, size):
    if img.size == size:
        return img
    return img.resize(size, _RESAMPLE, reducing_gap=_REDUCING_GAP)


def _decode_image(path, target_hw, resize):
    """Read one image file and bring it to the target size.

    Returns
    -------
    pixels : ndarray of shape target_hw
        ``uint8`` for 8-bit sources (to be divided by 255), else ``float32`` in [0, 1].
    """
    try:
        with open(path, "rb") as file:
            gray = _open_grayscale(file, target_hw, resize)
    except (_UnreadableImage, MemoryError):
        raise
    # A damaged file can make a decoder fail in many ways; each becomes a reason.
    except Exception as error:
        raise _UnreadableImage(_describe_decoding_error(error)) from None

    output_size = _output_size(gray.size, target_hw, resize)
    picture = np.asarray(_resized(gray, output_size))
    if resize == "stretch":
        return picture
    canvas = np.zeros(target_hw, dtype=picture.dtype)
    top = (target_hw[0] - picture.shape[0]) // 2
    left = (target_hw[1] - picture.shape[1]) // 2
    canvas[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    return canvas


def _cache_key(status, target_hw, resize):
    # Device and inode name the file itself, whatever link or relative path leads
    # to it; size and modification time tell when it was rewritten.
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        target_hw,
        resize,
    )


def _write_rows(images, rows, pixels):
    """Write each of ``pixels`` into its row of ``images``, in [0, 1].

    8-bit pixels are scaled in blocks: a NumPy call per image would cost more than
    the scaling itself.
    """
    eight_bit = [
        (row, image)
        for row, image in zip(rows, pixels, strict=True)
        if image.dtype == np.uint8
    ]
    per_block = max(1, _BLOCK_NBYTES // images[0].nbytes)
    for start in range(0, len(eight_bit), per_block):
        block_rows, block = zip(*eight_bit[start : start + per_block], strict=True)
        first, last = block_rows[0], block_rows[-1]
        if last - first == len(block_rows) - 1:  # consecutive rows: no gather needed
            target = images[first : last + 1, :, :, 0]
            np.stack(block, out=target, casting="unsafe")
            target /= 255
        else:
            images[list(block_rows), :, :, 0] = np.stack(block) / np.float32(255)
    for row, image in zip(rows, pixels, strict=True):
        if image.dtype != np.uint8:
            images[row, :, :, 0] = image


# ---------------------------------------------------------------------------------
# Reading many images
# ---------------------------------------------------------------------------------


def _is_path(value):
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fsdecode(os.fspath(value))
    return text != "" and "\0" not in text


def _describe_entry(value):
    if not isinstance(value, (str, os.PathLike)):
        return f"{value!r} ({type(value).__name__})"
    if os.fsdecode(os.fspath(value)) == "":
        return f"{value!r} (empty string)"
    return f"{value!r} (contains a null character)"


def _check_paths(X):
    """Return the paths in ``X`` as a list, or raise a ValueError that says why not."""
    if isinstance(X, (str, bytes, os.PathLike)):
        raise ValueError(
            "ImageLoader expects a sequence of image paths, got a single path "
            f"{X!r}; wrap it in a list."
        )
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    elif not hasattr(X, "__len__"):
        X = list(X)
    paths = np.asarray(X, dtype=object)
    if paths.ndim == 2 and paths.shape[1] == 1:
        paths = paths[:, 0]
    if paths.ndim != 1:
        raise ValueError(
            "ImageLoader expects a 1-D sequence of image paths (or a single column "
            f"of them); got an array of shape {paths.shape}."
        )
    if paths.size == 0:
        raise ValueError("ImageLoader needs at least one image path; X is empty.")

    invalid = [
        (position, value) for position, value in enumerate(paths) if not _is_path(value)
    ]
    if invalid:
        listed = [
            f"position {position}: {_describe_entry(value)}"
            for position, value in invalid[:_MAX_LISTED_INVALID_ENTRIES]
        ]
        if len(invalid) > _MAX_LISTED_INVALID_ENTRIES:
            listed.append(f"and {len(invalid) - _MAX_LISTED_INVALID_ENTRIES} more")
        raise ValueError(
            "X must contain only image file paths (str or os.PathLike); "
            f"{len(invalid)} entries are not: " + "; ".join(listed) + "."
        )
    return paths.tolist()


def _n_threads(n_jobs):
    n_cpus = os.cpu_count() or 1
    if n_jobs is None:
        return min(4, n_cpus)
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return n_jobs


def _look_up(paths, target_hw, resize, use_cache):
    """Stat every file and look it up in the cache.

    Returns
    -------
    jobs : list of (int, tuple or None, ndarray or None)
        Row, cache key and cached pixels of each readable file.
    failures : list of (int, str)
        Row and reason of each file that cannot be read.
    """
    failures, rows, keys = [], [], []
    for row, path in enumerate(paths):
        try:
            status = _stat_image_file(os.fspath(path))
        except _UnreadableImage as error:
            failures.append((row, error.reason))
            continue
        rows.append(row)
        keys.append(_cache_key(status, target_hw, resize) if use_cache else None)
    cached = _CACHE.get_many(keys) if use_cache else [None] * len(keys)
    return list(zip(rows, keys, cached, strict=True)), failures


def _load_block(paths, jobs, images, target_hw, resize):
    """Write the pixels of ``jobs``, cached or decoded, into ``images``.

    Returns
    -------
    failures : list of (int, str)
        Row and reason of each file that could not be decoded.
    """
    failures, rows, loaded = [], [], []
    for row, key, pixels in jobs:
        if pixels is None:
            try:
                pixels = _decode_image(os.fspath(paths[row]), target_hw, resize)
            except _UnreadableImage as error:
                failures.append((row, error.reason))
                continue
            if key is not None:
                _CACHE.put(key, pixels)
        rows.append(row)
        loaded.append(pixels)
    _write_rows(images, rows, loaded)
    return failures


def _load_images(paths, target_hw, resize, n_threads, use_cache):
    images = np.empty((len(paths), *target_hw, 1), dtype=np.float32)
    jobs, failures = _look_up(paths, target_hw, resize, use_cache)

    def load(block):
        return _load_block(paths, block, images, target_hw, resize)

    # Cached images are copied here, in the calling thread: threads would cost more
    # than the copy. Only the files to decode go to the threads.
    load([job for job in jobs if job[2] is not None])
    to_decode = [job for job in jobs if job[2] is None]
    # Files to decode go to the threads in blocks: a task per file costs the pool
    # more time, under the GIL, than decoding a small JPEG does.
    size = max(1, min(_MAX_BLOCK, len(to_decode) // (4 * n_threads)))
    blocks = [to_decode[i : i + size] for i in range(0, len(to_decode), size)]
    if n_threads <= 1 or len(blocks) <= 1:
        outcomes = [load(block) for block in blocks]
    else:
        pool = ThreadPoolExecutor(max_workers=n_threads)
        try:
            outcomes = list(pool.map(load, blocks))
        finally:
            # On an interrupt, drop the files not started rather than decode them all.
            pool.shutdown(cancel_futures=True)

    failures += [failure for block in outcomes for failure in block]
    if failures:
        raise ImageLoadError(
            [(paths[row], reason) for row, reason in sorted(failures)],
            n_images=len(paths),
        )
    return images


# ---------------------------------------------------------------------------------
# The transformer
# ---------------------------------------------------------------------------------


class ImageLoader(TransformerMixin, BaseEstimator):
    """Load image files as grayscale arrays of one size, ready for a CNN.

    A stateless transformer: ``fit`` learns nothing, and ``transform`` reads the files
    named in ``X`` and returns them as one ``float32`` array of shape
    ``(n_images, height, width, 1)`` with values in ``[0, 1]``. Put it first in a
    :class:`~sklearn.pipeline.Pipeline` so that searches can tune
    ``load__image_size`` like any other parameter.

    Every image is read upright (its EXIF orientation applied) and turned into one
    grayscale channel:

    * 8-bit images (grayscale, bilevel, RGB, CMYK, YCbCr, palette) become their
      luminance ``0.299 R + 0.587 G + 0.114 B``, divided by 255.
    * Images with transparency (RGBA, LA, palette or colour with a transparent
      colour) are composited on black: a pixel counts ``alpha / 255`` of its
      luminance, so fully transparent areas read as 0, like the padding.
    * 16-bit grayscale images (modes ``"I;16"``, ``"I;16B"``, ...) are divided by
      65535, so that their full depth is kept.
    * 32-bit integer images (mode ``"I"``) are divided by 65535 when all their
      values lie in ``[0, 65535]`` (16-bit data, as some readers give it); otherwise
      they are rescaled linearly from their own minimum and maximum to ``[0, 1]``.
    * Floating-point images (mode ``"F"``) are kept as they are when all their values
      lie in ``[0, 1]``; otherwise they are rescaled from their own minimum and
      maximum. NaN or infinite values make the file unreadable.
    * Multi-frame files (animated GIF, TIFF stacks) give their first frame.

    JPEG files are decoded straight to grayscale at a reduced scale when the target
    is much smaller than the file. Files are decoded in parallel threads, and
    decoded images are cached for the whole process, keyed by the file's device and
    inode (so any link or relative path to it hits), size and modification time, the
    target size and ``resize``: a file that changes is read again. Each process
    has its own cache, so searches run with ``n_jobs > 1`` fill one per worker. See
    :func:`set_cache_limit`, :func:`clear_cache` and :func:`cache_info`.

    Parameters
    ----------
    image_size : int or tuple of (int, int), default=64
        Size of the output images: an int for square images, or ``(height, width)``.

    resize : {"stretch", "pad"}, default="stretch"
        How images are brought to ``image_size``. ``"stretch"`` resizes each image to
        the target whatever its aspect ratio. ``"pad"`` keeps the aspect ratio: the
        image is scaled to fit inside the target and centred, and the borders are
        filled with zeros (black).

    n_jobs : int, default=None
        Number of threads that decode files at once. ``None`` means
        ``min(4, os.cpu_count())``; ``-1`` means all processors, ``-2`` all but one,
        and so on.

    cache : bool, default=True
        Whether decoded, resized images are kept in the process-wide cache and
        taken from it. With ``False`` every call decodes every file.

    See Also
    --------
    set_cache_limit : Bound the memory of the process-wide image cache.
    clear_cache : Empty the process-wide image cache.
    cache_info : Hits, misses and size of the process-wide image cache.

    Notes
    -----
    Unreadable files never yield arrays: ``transform`` checks every file and raises
    one :class:`ImageLoadError` that lists each file that is missing, a directory,
    empty, not an image, truncated or corrupt, unreadable for lack of permission, or
    larger than ``PIL.Image.MAX_IMAGE_PIXELS`` (a possible decompression bomb; PIL
    also emits its own ``DecompressionBombWarning`` for such a file).
    Truncated files are detected unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` has
    been set to True elsewhere in the program. Symbolic links are followed; a broken
    link or a loop of links is reported as such.

    **Memory.** Loading ``n`` images of ``h x w`` pixels needs:

    * the output array, ``n * h * w * 4`` bytes (``float32``), allocated once and
      filled in place;
    * with ``cache=True``, the cached images: ``n * h * w`` bytes for 8-bit sources
      and ``4 * n * h * w`` bytes for 16-bit, 32-bit and floating-point ones (kept as
      ``float32``), up to the bound of :func:`set_cache_limit`; the cache outlives
      the call;
    * one decoded file per thread (``n_jobs``) at a time, at its full resolution
      (JPEGs at a reduced one), freed as soon as it is resized;
    * about 2 KiB of bookkeeping per path while the call runs.

    For example, 5,000 images at 224 x 224 take 1 GB of output and, from 8-bit
    files, 251 MB of cache.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from pneumoclf.preprocessing import ImageLoader
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = [Path(folder) / f"xray_{shade}.png" for shade in (0, 51, 255)]
    ...     for path, shade in zip(paths, (0, 51, 255)):
    ...         Image.new("L", (40, 30), color=shade).save(path)
    ...     X = ImageLoader(image_size=16).fit_transform(paths)
    ...     X_pad = ImageLoader(image_size=16, resize="pad").transform(paths)
    >>> X.shape, X.dtype
    ((3, 16, 16, 1), dtype('float32'))
    >>> X[:, 8, 8, 0]
    array([0. , 0.2, 1. ], dtype=float32)

    With ``resize="pad"`` the 40 x 30 image becomes 16 x 12, centred between two
    rows of zeros above and below:

    >>> X_pad[2, :, 8, 0]
    array([0., 0., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0.],
          dtype=float32)
    """

    _parameter_constraints: ClassVar[dict] = {
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple],
        "resize": [StrOptions({"stretch", "pad"})],
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
        "cache": ["boolean"],
    }

    def __init__(self, *, image_size=64, resize="stretch", n_jobs=None, cache=True):
        self.image_size = image_size
        self.resize = resize
        self.n_jobs = n_jobs
        self.cache = cache

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the form of ``X``; nothing is learned.

        Parameters
        ----------
        X : sequence of str or os.PathLike of shape (n_images,)
            Paths of image files. A one-column array or DataFrame is accepted too.
            The files are not opened.

        y : None
            Ignored; present for compatibility with pipelines.

        Returns
        -------
        self : ImageLoader
            The loader itself.
        """
        self._target_size()
        _check_paths(X)
        return self

    def transform(self, X):
        """Read the image files named in ``X``.

        Parameters
        ----------
        X : sequence of str or os.PathLike of shape (n_images,)
            Paths of image files. A one-column array or DataFrame is accepted too.

        Returns
        -------
        images : ndarray of shape (n_images, height, width, 1), dtype float32
            The images in the order of ``X``, with values in ``[0, 1]``.

        Raises
        ------
        ImageLoadError
            If any file cannot be read; the error lists every such file and why.
        ValueError
            If ``X`` is empty or holds entries that are not paths.
        """
        self._validate_params()
        target_hw = self._target_size()
        paths = _check_paths(X)
        return _load_images(
            paths,
            target_hw,
            self.resize,
            n_threads=_n_threads(self.n_jobs),
            use_cache=self.cache,
        )

    def _target_size(self):
        """Return ``image_size`` as ``(height, width)``, checking every side."""
        sides = self.image_size
        if not isinstance(sides, tuple):
            sides = (sides, sides)
        # bool is an Integral that the parameter constraints let through.
        if len(sides) == 2 and all(
            isinstance(side, Integral) and not isinstance(side, bool) and side >= 1
            for side in sides
        ):
            height, width = sides
            return (int(height), int(width))
        raise InvalidParameterError(
            "The 'image_size' parameter of ImageLoader must be an int >= 1 or a "
            f"tuple of two ints >= 1 (height, width). Got {self.image_size!r} instead."
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags
