"""Plain JPEGs decoded straight to reduced grayscale, without ``Image.open``.

Parsing a small JPEG's headers in Python is most of the cost of decoding it, and
time for which the other decoding threads wait. The files this fast path takes
(8-bit, 1 or 3 channels, no segment that changes the picture) are handed to the
same libjpeg decoder, at the same scale, as ``Image.open`` with ``draft`` would
use; anything else goes the general way, which names what is wrong with it.
"""

from PIL import Image

JPEG_START = b"\xff\xd8"

# Segments a JPEG may hold and still be decoded without Image.open (see
# decode_plain_jpeg): JFIF header, quantisation and Huffman tables, restart interval,
# comments. Any other (EXIF orientation, colour profiles, Adobe colour transforms,
# several frames) sends the file through Image.open.
_PLAIN_JPEG_SEGMENTS = frozenset({0xE0, 0xDB, 0xC4, 0xDD, 0xFE})

# Baseline, extended sequential and progressive frames, Huffman-coded.
_PLAIN_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2})


# All frame (start of frame) markers, and the start of the entropy-coded scan.
_FRAMES = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                     *range(0xCD, 0xD0)})  # fmt: skip
_START_OF_SCAN = 0xDA
# Markers that stand alone, without a length: TEM and the restart markers.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _segments(data):
    """``(marker, position)`` of each header segment, up to the start of the scan.

    Stops early at anything that is not a marker where one is due, or at the end
    of ``data``.
    """
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before the marker
            position += 1
            continue
        yield marker, position
        if marker == _START_OF_SCAN:
            return
        if marker in _STANDALONE:
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")


def _frame_header(data, position):
    """``(precision, width, height, n_channels)`` of the frame segment there."""
    if position + 10 > len(data):
        return None
    precision = data[position + 4]
    height = int.from_bytes(data[position + 5 : position + 7], "big")
    width = int.from_bytes(data[position + 7 : position + 9], "big")
    return precision, width, height, data[position + 9]


def jpeg_frame(head):
    """``(width, height, n_channels)`` of a JPEG whose header lies within ``head``.

    Returns None unless ``head``, the first bytes of the file, holds a frame
    header and reaches the start of the scan: anything else is not a JPEG its
    decoder could read without scanning the whole file for markers.
    """
    if not head.startswith(JPEG_START):
        return None
    frame = None
    for marker, position in _segments(head):
        if marker in _FRAMES:
            frame = _frame_header(head, position)
        elif marker == _START_OF_SCAN and frame is not None:
            _, width, height, n_channels = frame
            return (width, height, n_channels) if width and height else None
    return None


def stored_in_gray(head):
    """Whether a file whose first bytes are ``head`` stores one gray channel.

    True for a JPEG of one component or a gray PNG, False for other JPEGs and
    PNGs, None when ``head`` does not tell (another format, or a header longer
    than ``head``).
    """
    if head.startswith(_PNG_SIGNATURE) and len(head) > _PNG_COLOUR_TYPE:
        return head[_PNG_COLOUR_TYPE] in _PNG_GRAY_TYPES
    frame = jpeg_frame(head)
    return None if frame is None else frame[2] == 1


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Offset of the colour type in a PNG's IHDR chunk, and the gray types (with alpha).
_PNG_COLOUR_TYPE = 25
_PNG_GRAY_TYPES = frozenset({0, 4})


def plain_jpeg_size(data):
    """``(width, height)`` of an 8-bit, 1- or 3-channel JPEG with no extra segments.

    Returns None for anything else, or for a file whose headers end early.
    """
    if not data.startswith(JPEG_START):
        return None
    for marker, position in _segments(data):
        if marker in _PLAIN_JPEG_FRAMES:
            frame = _frame_header(data, position)
            if frame is None:
                return None
            precision, width, height, n_channels = frame
            if precision == 8 and n_channels in (1, 3) and width and height:
                return width, height
            return None
        if marker not in _PLAIN_JPEG_SEGMENTS:
            return None
    return None


def decode_plain_jpeg(data, size, needed_size):
    """Decode a plain JPEG straight to a reduced grayscale "L" image, or return None.

    Parameters
    ----------
    data : bytes
        The whole file.
    size : tuple of int
        ``(width, height)`` of the picture, as :func:`plain_jpeg_size` gives it.
    needed_size : tuple of int
        ``(width, height)`` the picture will be resampled to: the decoder reduces
        the picture by the largest power of two that keeps at least this size.

    Returns
    -------
    PIL.Image.Image or None
        None when libjpeg refuses the data, so that ``Image.open`` reads the file
        and names what is wrong with it.
    """
    needed_w, needed_h = needed_size
    # The scale JpegImageFile.draft chooses: the largest that keeps the needed size.
    ratio = min(size[0] // needed_w, size[1] // needed_h)
    scale = next((s for s in (8, 4, 2) if ratio >= s), 1)
    decoded_size = (-(-size[0] // scale), -(-size[1] // scale))
    try:
        # Pillow's JPEG decoder arguments: raw mode, JPEG colour mode, scale, draft.
        return Image.frombytes("L", decoded_size, data, "jpeg", "L", "", scale, 0)
    except (OSError, ValueError):
        return None
