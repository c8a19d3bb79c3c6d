"""Read one DICOM file as a radiologist's viewer shows it, and its patient.

Needs the ``dicom`` extra (pydicom), imported only when a DICOM file is met.
The pixels go through the standard display chain of DICOM PS3.3 (C.11): the stored
values, the Modality LUT (``RescaleSlope`` / ``RescaleIntercept`` or a Modality LUT
Sequence), the VOI LUT (a VOI LUT Sequence, else the first ``WindowCenter`` /
``WindowWidth``), then MONOCHROME1 inverted so that bone is bright.
"""

import io
import os
import zlib

import numpy as np

from ._errors import UnreadableImage

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})

# A DICOM file (PS3.10) opens with a 128-byte preamble and the marker "DICM".
_PREAMBLE_BYTES = 128
_MARKER = b"DICM"
HEADER_BYTES = _PREAMBLE_BYTES + len(_MARKER)

# Share of the pixels left out at each end of an image's own range, and the most
# pixels that range is taken from (see _own_range).
_OWN_RANGE_SHARE = 0.001
_OWN_RANGE_SAMPLE = 2**20

# The modalities of projection X-ray images (PS3.3 C.7.3.1.1.1).
XRAY_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "RF", "XA", "MG", "IO", "PX"})

_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")

# Elements that a DICOM image without a preamble still carries.
_IMAGE_ELEMENTS = frozenset({"SOPClassUID", "Rows", "Columns", "PixelData"})


def import_pydicom():
    """Return the pydicom module, or say which extra installs it."""
    try:
        import pydicom
    except ImportError as error:
        raise ImportError(
            'Reading DICOM files needs pydicom: pip install "pneumoclf[dicom]".'
        ) from error
    return pydicom


def has_dicom_header(head):
    """Whether the first bytes of a file carry the DICOM marker."""
    return head[_PREAMBLE_BYTES:HEADER_BYTES] == _MARKER


def is_dicom(path, head):
    """Whether to read a file as DICOM: by its marker or its suffix."""
    return has_dicom_header(head) or _has_dicom_suffix(path)


def _has_dicom_suffix(path):
    return os.path.splitext(os.fsdecode(path))[1].lower() in DICOM_SUFFIXES


# Suffixes of the pictures PIL decodes, which are never read as DICOM by name.
PICTURE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"})


def may_be_dicom(path):
    """Whether ``path`` is DICOM by suffix, or has the marker and no picture suffix."""
    suffix = os.path.splitext(os.fsdecode(path))[1].lower()
    if suffix in DICOM_SUFFIXES:
        return True
    return suffix not in PICTURE_SUFFIXES and file_has_dicom_header(path)


def file_has_dicom_header(path):
    """Whether the file at ``path`` starts with a DICOM header; False if unreadable."""
    try:
        with open(path, "rb") as file:
            return has_dicom_header(file.read(HEADER_BYTES))
    except OSError:
        return False


# The transfer syntax whose whole data set is deflated (PS3.5 A.5): pydicom
# inflates it at once, however large it grows.
_DEFLATED = b"1.2.840.10008.1.2.1.99"
# Bytes a deflated header may inflate to when only its attributes are read: far
# above any real header, which comes before the pixels.
_HEADER_BUDGET = 4 * 1024**2
# Beyond one frame's pixels (at most 4 bytes each), what a data set may add.
_DATASET_SLACK = 16 * 1024**2


def read_dicom_header(file, path):
    """The attributes of a DICOM file before its pixels, reading no more than that.

    ``file`` is open at the start. A deflated data set is inflated within a small
    budget, as only its header is wanted.
    """
    pydicom = import_pydicom()
    deflated = _deflated_data_set(file, _HEADER_BUDGET, header=True)
    if deflated is not None:
        return deflated
    return pydicom.dcmread(file, stop_before_pixels=True, force=_has_dicom_suffix(path))


def _deflated_data_set(file, budget, *, header):
    """The data set of a deflated file, inflated within ``budget`` bytes; else None.

    With ``header``, the part before the pixels is read from what the budget
    allows; otherwise a data set that inflates beyond it is refused.
    """
    meta_end, meta = _file_meta(file)
    if meta is None or _DEFLATED not in meta:
        file.seek(0)
        return None
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    file.seek(meta_end)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    data = inflater.decompress(file.read(), budget)
    if inflater.unconsumed_tail and not header:
        raise UnreadableImage(
            f"DICOM deflated data set inflates beyond {budget // 1024**2} MiB, more "
            "than its pixels need; possible decompression bomb"
        )
    dataset = read_dataset(
        io.BytesIO(data),
        is_implicit_VR=False,
        is_little_endian=True,
        stop_when=_before_pixels if header else None,
    )
    dataset.file_meta = FileMetaDataset(
        read_dataset(io.BytesIO(meta), is_implicit_VR=False, is_little_endian=True)
    )
    return dataset


# Tags from the pixel data's group on hold pixels, not attributes.
_PIXEL_DATA_GROUP = 0x7FE00000


def _before_pixels(tag, vr, length):
    return tag >= _PIXEL_DATA_GROUP


def _file_meta(file):
    """Where a file's meta information ends, and its bytes; (None, None) without."""
    file.seek(0)
    head = file.read(HEADER_BYTES + 12)
    # The meta information's first element is its group length, (0002,0000) UL.
    if not (has_dicom_header(head) and head[HEADER_BYTES:][:4] == b"\x02\x00\x00\x00"):
        return None, None
    length = int.from_bytes(head[HEADER_BYTES + 8 :], "little")
    return HEADER_BYTES + 12 + length, head[HEADER_BYTES:] + file.read(length)


def dicom_patient_id(path):
    """The ``PatientID`` of a DICOM file, or None when it is empty or unreadable."""
    import_pydicom()  # a missing extra concerns every file: said, not swallowed
    try:
        with open(path, "rb") as file:
            dataset = read_dicom_header(file, path)
    except Exception:  # the loader reports an unreadable file, with its reason
        return None
    patient = str(dataset.get("PatientID", "") or "").strip()
    return patient or None


def read_dicom(file, path, head, max_pixels):
    """Decode the first frame of a DICOM file for display.

    Parameters
    ----------
    file : binary file object
        The open file, at its start.
    path : str
        Its name; a ``.dcm`` or ``.dicom`` suffix also reads files without a
        preamble.
    head : bytes
        The file's first ``HEADER_BYTES`` bytes, already read.
    max_pixels : int or None
        Most pixels a frame may have (a guard against decompression bombs).

    Returns
    -------
    pixels : ndarray of shape (rows, columns), float32
        Values in [0, 1], 1 the brightest (bone).
    """
    pydicom = import_pydicom()
    budget = _DATASET_SLACK + (4 * max_pixels if max_pixels is not None else 2**34)
    try:
        dataset = _deflated_data_set(file, budget, header=False)
        if dataset is None:
            dataset = pydicom.dcmread(file, force=_has_dicom_suffix(path))
    except UnreadableImage:
        raise
    except Exception as error:
        raise UnreadableImage(
            f"corrupt DICOM file ({type(error).__name__}: {error})"
        ) from None
    if not has_dicom_header(head) and not _IMAGE_ELEMENTS & set(dataset.dir()):
        raise UnreadableImage("not a DICOM file (no DICOM header or image elements)")
    _check_xray_image(dataset, max_pixels)
    _check_decoder(dataset)
    try:
        dataset.pixel_array_options(index=0)
        stored = dataset.pixel_array
    except Exception as error:
        raise UnreadableImage(
            f"corrupt DICOM pixel data ({type(error).__name__}: {error})"
        ) from None
    shown = _values_of_interest(_modality_values(stored, dataset), dataset)
    if dataset.PhotometricInterpretation == "MONOCHROME1":
        np.subtract(1.0, shown, out=shown)
    return shown


def _check_xray_image(dataset, max_pixels):
    if "PixelData" not in dataset:
        raise UnreadableImage("DICOM file holds no pixel data (7FE0,0010)")
    modality = str(dataset.get("Modality", "") or "")
    if modality and modality.upper() not in XRAY_MODALITIES:
        raise UnreadableImage(
            f"DICOM modality {modality!r} is not an X-ray (expected one of "
            f"{', '.join(sorted(XRAY_MODALITIES))})"
        )
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric not in _GRAYSCALE:
        raise UnreadableImage(
            f"DICOM photometric interpretation {photometric!r} is not grayscale "
            "(MONOCHROME1 or MONOCHROME2)"
        )
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows < 1 or columns < 1:
        raise UnreadableImage(f"DICOM image of {rows} x {columns} pixels")
    if max_pixels is not None and rows * columns > max_pixels:
        raise UnreadableImage(
            f"too many pixels ({columns} x {rows} = {rows * columns} > "
            f"PIL.Image.MAX_IMAGE_PIXELS = {max_pixels}); possible decompression bomb"
        )


def _check_decoder(dataset):
    """Say which pixel data handler a compressed file needs, if none is installed."""
    from pydicom.pixels import get_decoder

    syntax = getattr(dataset, "file_meta", {}).get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise UnreadableImage(
            f"DICOM transfer syntax {syntax.name} ({syntax}) cannot be decoded "
            "by pydicom"
        ) from None
    if not decoder.is_available:
        raise UnreadableImage(
            f"DICOM pixel data compressed as {syntax.name} needs a pixel data "
            f"handler that is not installed; install one of: "
            f"{'; '.join(decoder.missing_dependencies)}"
        )


def _modality_values(stored, dataset):
    from pydicom.pixels import apply_modality_lut

    values = np.asarray(apply_modality_lut(stored, dataset))
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise UnreadableImage(
            "DICOM Modality LUT gives values that are not finite (RescaleSlope "
            f"{dataset.get('RescaleSlope')!r}, RescaleIntercept "
            f"{dataset.get('RescaleIntercept')!r})"
        )
    return values


def _values_of_interest(values, dataset):
    """The VOI LUT stage: float32 values in [0, 1] (PS3.3 C.11.2)."""
    lut = _first_voi_lut(dataset)
    if lut is not None:
        return _look_up_voi(values, dataset, lut)
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        center = _first_value(dataset.WindowCenter)
        if not np.isfinite(center):
            raise UnreadableImage(f"invalid DICOM window centre {center}")
        return _window(
            values,
            center,
            _first_value(dataset.WindowWidth),
            str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper(),
        )
    return _linear(values, *_own_range(values))


def _linear(values, low, high):
    """``low`` to 0 and ``high`` to 1 linearly, clipped, as a new float32 array."""
    shown = values.astype(np.float32)
    if high == low:
        shown[...] = 0.0
        return shown
    shown -= np.float32(low)
    shown *= np.float32(1.0 / (high - low))
    return np.clip(shown, 0.0, 1.0, out=shown)


def _first_voi_lut(dataset):
    sequence = dataset.get("VOILUTSequence")
    if not sequence:
        return None
    item = sequence[0]
    if item.get("LUTDescriptor") is None or item.get("LUTData") is None:
        return None
    return item


def _look_up_voi(values, dataset, lut):
    """A VOI LUT table, its output divided by its nominal range ``2**bits - 1``."""
    from pydicom.pixels import apply_voi

    bits = int(lut.LUTDescriptor[2])
    entries = np.rint(values).astype(np.int64)
    try:
        looked_up = apply_voi(entries, dataset, index=0)
    except (NotImplementedError, ValueError) as error:
        raise UnreadableImage(f"unsupported DICOM VOI LUT ({error})") from None
    return _linear(looked_up, 0, 2**bits - 1)


def _first_value(value):
    """The first of a multi-valued element (the default view), as a float."""
    return float(np.ravel(np.asarray(value, dtype=np.float64))[0])


def _window(values, center, width, function):
    """The window functions of PS3.3 C.11.2.1.2 and C.11.2.1.3, onto [0, 1]."""
    if function == "SIGMOID":
        _check_width(width > 0, width, function)
        shown = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
        return shown.astype(np.float32)
    if function == "LINEAR_EXACT":
        _check_width(width > 0, width, function)
        return _linear(values, center - width / 2, center + width / 2)
    if function != "LINEAR":
        raise UnreadableImage(f"unsupported DICOM VOI LUT function {function!r}")
    _check_width(width >= 1, width, function)
    if width == 1:  # a step at the centre
        return (values > center - 0.5).astype(np.float32)
    # (x - (c - 0.5)) / (w - 1) + 0.5, clipped: c - 0.5 -+ (w - 1) / 2 to 0 and 1.
    half = (width - 1) / 2
    return _linear(values, center - 0.5 - half, center - 0.5 + half)


def _check_width(valid, width, function):
    if not valid:
        raise UnreadableImage(f"invalid DICOM window width {width} for {function}")


def _own_range(values):
    """The image's own range, as a viewer shows an image without a window.

    The lowest and highest ``_OWN_RANGE_SHARE`` of the pixels are left out, so that
    a few stray pixels (dead or saturated detector elements, a burned-in dot) do
    not squeeze the rest. Large images are sampled.
    """
    flat = values.ravel()
    sample = flat[:: max(1, flat.size // _OWN_RANGE_SAMPLE)]
    low = np.quantile(sample, _OWN_RANGE_SHARE, method="lower")
    high = np.quantile(sample, 1 - _OWN_RANGE_SHARE, method="higher")
    return float(low), float(high)
