"""Awkward names, small settings and helpers for the hostile-input cases.

Each module's tests specify, besides the ordinary behaviour, how the module treats
unusual and hostile input: the right result, or an error that names the file, the
option or the value at fault.
"""

import os
import struct
import zlib

import pytest

SIDE = 16
SMALL_CNN = dict(
    n_conv_blocks=2, filters=4, dense_units=8, epochs=2, batch_size=16,
    early_stopping=False, random_state=0,
)  # fmt: skip
# Spaces, accents, CJK and emoji in folder and file names.
AWKWARD_FOLDER = "radiografías de tórax 中文 😀"
AWKWARD_MODEL_NAME = "modèle 肺 🫁.pneumoclf"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
not_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="file permissions do not bind the superuser",
)


def save_image(image, path, **options):
    """Save a PIL image and return its path."""
    image.save(path, **options)
    return path


# ------------------------------------------------------- hostile files, made on demand


def png_chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def raw_png(width, height, *, bit_depth, color_type, scanlines=None):
    """PNG bytes written by hand, for depths PIL does not write (or lies about)."""
    if scanlines is None:
        scanlines = [b""] * height
    pixels = zlib.compress(b"".join(b"\0" + line for line in scanlines))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def png_declaring(width, height):
    """A tiny PNG whose header claims ``width x height`` pixels."""
    return raw_png(width, height, bit_depth=8, color_type=0)


def decompression_bomb(folder):
    # 100000 x 100000 pixels declared in 60 bytes: far above twice PIL's limit.
    path = folder / "bomb.png"
    path.write_bytes(png_declaring(100_000, 100_000))
    return path


def moderate_bomb(folder):
    # 10000 x 10000: above PIL's limit but below twice it, where PIL only warns.
    path = folder / "large.png"
    path.write_bytes(png_declaring(10_000, 10_000))
    return path


def symlink_loop(folder):
    os.symlink(folder / "b.png", folder / "a.png")
    os.symlink(folder / "a.png", folder / "b.png")
    return folder / "a.png"


def dangling_symlink(folder):
    os.symlink(folder / "deleted.png", folder / "link.png")
    return folder / "link.png"


def named_pipe(folder):
    os.mkfifo(folder / "pipe.png")
    return folder / "pipe.png"
