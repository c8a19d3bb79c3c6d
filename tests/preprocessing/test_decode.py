"""Decoding one file: modes and depths, orientation, odd sizes, the JPEG fast path."""

import io
import os

import numpy as np
import pytest
from awkward import (
    SIDE,
    raw_png,
    save_image,
)
from imagefiles import gray_file, save
from PIL import Image

from pneumoclf.preprocessing import (
    ImageLoader,
    ImageLoadError,
    _decode,
    _jpeg,
)

# --- image modes -------------------------------------------------------------------

EXIF_ORIENTATION = 0x0112


def uniform_image(mode, value):
    return Image.new(mode, (6, 5), value)


def palette_image(transparent_index=None):
    image = Image.new("P", (6, 5), 1)
    image.putpalette([255, 255, 255, 0, 255, 0])
    if transparent_index is not None:
        image.info["transparency"] = transparent_index
    return image


MODE_CASES = [
    # (mode read back, image, file suffix, expected gray value)
    ("L", uniform_image("L", 128), "png", 128 / 255),
    ("1", uniform_image("1", 1), "png", 1.0),
    ("1", uniform_image("1", 0), "png", 0.0),
    ("I;16", uniform_image("I;16", 65535), "png", 1.0),
    ("I;16", uniform_image("I;16", 32768), "png", 32768 / 65535),
    ("I;16", uniform_image("I;16", 300), "png", 300 / 65535),
    ("I;16B", uniform_image("I;16B", 32768), "tif", 32768 / 65535),
    ("I", uniform_image("I", 40000), "tif", 40000 / 65535),
    ("F", uniform_image("F", 0.25), "tif", 0.25),
    ("RGB", uniform_image("RGB", (255, 0, 0)), "png", 76 / 255),
    ("RGB", uniform_image("RGB", (0, 0, 255)), "png", 29 / 255),
    ("RGBA", uniform_image("RGBA", (200, 200, 200, 255)), "png", 200 / 255),
    ("RGBA", uniform_image("RGBA", (255, 255, 255, 128)), "png", 128 / 255),
    ("RGBA", uniform_image("RGBA", (255, 255, 255, 0)), "png", 0.0),
    ("LA", uniform_image("LA", (200, 255)), "png", 200 / 255),
    ("LA", uniform_image("LA", (200, 0)), "png", 0.0),
    ("P", palette_image(), "png", 150 / 255),
    ("P", palette_image(transparent_index=1), "png", 0.0),
    ("P", palette_image(transparent_index=0), "png", 150 / 255),
    ("CMYK", uniform_image("CMYK", (0, 255, 255, 0)), "tif", 76 / 255),
    ("YCbCr", uniform_image("YCbCr", (100, 128, 128)), "tif", 100 / 255),
]


@pytest.mark.parametrize(
    ("mode", "image", "suffix", "expected"),
    MODE_CASES,
    ids=[f"{case[0]}-{index}" for index, case in enumerate(MODE_CASES)],
)
def test_every_image_mode_becomes_the_right_gray_value(
    tmp_path, mode, image, suffix, expected
):
    path = save(image, tmp_path / f"picture.{suffix}")
    with Image.open(path) as reread:
        assert reread.mode == mode

    images = ImageLoader(image_size=4).transform([path])

    np.testing.assert_allclose(images, expected, atol=1e-6)


def test_32_bit_integers_beyond_16_bits_are_rescaled_from_min_to_max(tmp_path):
    values = np.array([[-1000, 100_000]], dtype=np.int32).repeat(4, axis=0)
    path = save(Image.fromarray(values), tmp_path / "wide_range.tif")

    images = ImageLoader(image_size=(4, 2)).transform([path])

    np.testing.assert_allclose(images[0, :, :, 0], [[0.0, 1.0]] * 4)


def test_floats_outside_unit_range_are_rescaled_from_min_to_max(tmp_path):
    values = np.array([[-2.0, 0.0, 2.0]], dtype=np.float32).repeat(3, axis=0)
    path = save(Image.fromarray(values), tmp_path / "float.tif")

    images = ImageLoader(image_size=(3, 3)).transform([path])

    np.testing.assert_allclose(images[0, :, :, 0], [[0.0, 0.5, 1.0]] * 3)


def test_floats_with_nan_make_the_file_unreadable(tmp_path):
    values = np.full((3, 3), 0.5, dtype=np.float32)
    values[1, 1] = np.nan
    path = save(Image.fromarray(values), tmp_path / "nan.tif")

    with pytest.raises(ImageLoadError, match="NaN"):
        ImageLoader(image_size=3).transform([path])


def test_a_multi_frame_file_gives_its_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), shade) for shade in (40, 200)]
    path = tmp_path / "stack.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])

    images = ImageLoader(image_size=4).transform([path])

    np.testing.assert_allclose(images, 40 / 255, atol=1e-6)


# --- orientation and odd sizes -----------------------------------------------------


def left_white_jpeg(path, size, orientation):
    """A JPEG whose stored pixels are white on the left half, black on the right."""
    width, height = size
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[:, : width // 2] = 255
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return save(Image.fromarray(pixels), path, exif=exif, quality=95)


def test_exif_orientation_is_applied(tmp_path):
    # Orientation 6: the stored picture is shown turned a quarter clockwise, so its
    # left half appears on top.
    path = left_white_jpeg(tmp_path / "rotated.jpg", (32, 16), orientation=6)

    image = ImageLoader(image_size=(32, 16)).transform([path])[0, :, :, 0]

    assert image[:12].mean() > 0.95
    assert image[20:].mean() < 0.05


def test_exif_orientation_is_applied_when_jpeg_decoding_downscales(tmp_path):
    path = left_white_jpeg(tmp_path / "big_rotated.jpg", (256, 128), orientation=6)

    image = ImageLoader(image_size=16, resize="pad").transform([path])[0, :, :, 0]

    # Shown 128 wide and 256 tall: it fills columns 4 to 11, white on top.
    assert np.all(image[:, :4] == 0.0) and np.all(image[:, 12:] == 0.0)
    assert image[:6, 4:12].mean() > 0.95
    assert image[10:, 4:12].mean() < 0.05


@pytest.fixture
def decoded_sizes(monkeypatch):
    sizes = []  # (width, height) of each decoded image, upright, before resizing
    original_resized = _decode._resized

    def recording_resized(image, size):
        sizes.append(image.size)
        return original_resized(image, size)

    monkeypatch.setattr(_decode, "_resized", recording_resized)
    return sizes


def test_large_jpeg_is_decoded_at_a_reduced_scale_no_smaller_than_the_target(
    tmp_path, decoded_sizes
):
    rng = np.random.default_rng(0)
    pixels = np.kron(rng.integers(0, 256, (8, 8)), np.ones((64, 64))).astype(np.uint8)
    path = save(Image.fromarray(pixels), tmp_path / "large.jpg", quality=95)

    images = ImageLoader(image_size=64, cache=False).transform([path])

    assert decoded_sizes == [(64, 64)]  # 512 / 8, straight from the DCT
    with Image.open(path) as full:
        expected = np.asarray(full.resize((64, 64), Image.Resampling.BILINEAR)) / 255
    assert np.abs(images[0, :, :, 0] - expected).mean() < 0.02


@pytest.mark.parametrize(
    ("orientation", "decoded_size"),
    # Stored 512 wide and 64 tall; the target is 64 tall and 8 wide. Shown upright
    # (orientation 1) it must keep its 64 rows; turned (6) it may shrink 8 times.
    [(1, (512, 64)), (6, (8, 64))],
)
def test_jpeg_downscaling_accounts_for_the_exif_orientation(
    tmp_path, decoded_sizes, orientation, decoded_size
):
    path = left_white_jpeg(tmp_path / "strip.jpg", (512, 64), orientation)

    images = ImageLoader(image_size=(64, 8)).transform([path])

    assert decoded_sizes == [decoded_size]
    assert images.shape == (1, 64, 8, 1)


def noise_jpeg(path, mode, size, **options):
    rng = np.random.default_rng(sum(size))
    channels = {"L": (), "RGB": (3,)}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
    return save(Image.fromarray(pixels, mode), path, quality=90, **options)


@pytest.mark.parametrize(
    ("mode", "size", "options"),
    [
        ("L", (1, 1), {}),
        ("L", (300, 200), {"progressive": True}),
        ("RGB", (37, 23), {"subsampling": 0}),
        ("RGB", (513, 64), {"subsampling": 2, "optimize": True}),
        ("RGB", (256, 256), {"comment": b"a comment", "restart_marker_blocks": 1}),
    ],
)
@pytest.mark.parametrize(
    ("image_size", "resize"), [(16, "stretch"), ((20, 9), "pad"), (600, "stretch")]
)
def test_plain_jpegs_give_the_pixels_image_open_gives(
    tmp_path, monkeypatch, mode, size, options, image_size, resize
):
    path = noise_jpeg(tmp_path / "plain.jpg", mode, size, **options)
    target_hw = (image_size, image_size) if isinstance(image_size, int) else image_size
    assert _decode._decode_plain_jpeg(path.read_bytes(), target_hw, resize)
    loader = ImageLoader(image_size=image_size, resize=resize, cache=False)

    direct = loader.transform([path])
    monkeypatch.setattr(_decode, "_decode_plain_jpeg", lambda *args: None)
    through_image_open = loader.transform([path])

    np.testing.assert_array_equal(direct, through_image_open)


def test_jpegs_with_more_than_pixels_are_left_to_image_open(tmp_path):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 1
    rgb = Image.new("RGB", (16, 16), (200, 10, 10))
    files = {
        "exif": save(rgb, tmp_path / "exif.jpg", exif=exif),
        "icc": save(rgb, tmp_path / "icc.jpg", icc_profile=b"not checked here"),
        "cmyk": save(Image.new("CMYK", (16, 16)), tmp_path / "cmyk.jpg"),
    }
    for name, path in files.items():
        assert _jpeg.plain_jpeg_size(path.read_bytes()) is None, name

    plain = save(rgb, tmp_path / "plain.jpg").read_bytes()
    assert _jpeg.plain_jpeg_size(plain) == (16, 16)
    for cut in (2, 3, 20):  # headers that end early
        assert _jpeg.plain_jpeg_size(plain[:cut]) is None
    assert _jpeg.plain_jpeg_size(b"\x89PNG\r\n\x1a\n") is None


def test_a_truncated_plain_jpeg_is_reported_as_truncated(tmp_path):
    data = noise_jpeg(tmp_path / "whole.jpg", "L", (64, 64)).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    assert _jpeg.plain_jpeg_size(cut.read_bytes()) == (64, 64)

    with pytest.raises(ImageLoadError, match=r"cut\.jpg: truncated image file"):
        ImageLoader(image_size=16).transform([cut])


def test_a_one_pixel_image_fills_the_target(tmp_path):
    path = gray_file(tmp_path, "dot.png", 77, size=(1, 1))

    for resize in ("stretch", "pad"):
        images = ImageLoader(image_size=8, resize=resize).transform([path])
        np.testing.assert_allclose(images, 77 / 255, atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1000), (1000, 1)])
def test_extremely_elongated_images_load(tmp_path, size):
    path = gray_file(tmp_path, "line.png", 255, size=size)

    stretched = ImageLoader(image_size=16, resize="stretch").transform([path])
    padded = ImageLoader(image_size=16, resize="pad").transform([path])[0, :, :, 0]

    np.testing.assert_allclose(stretched, 1.0)
    line = padded[:, 7] if size[0] == 1 else padded[7, :]
    np.testing.assert_allclose(line, 1.0)
    assert padded.sum() == pytest.approx(16.0)


# ------------------------------------- every image mode and bit depth, for real


def _packed(values, bit_depth):
    per_byte = 8 // bit_depth
    groups = np.pad(values, (0, -len(values) % per_byte)).reshape(-1, per_byte)
    shifts = np.arange(per_byte - 1, -1, -1) * bit_depth
    return (groups.astype(np.uint8) << shifts).sum(axis=1).astype(np.uint8).tobytes()


def low_depth_gray_png(gray, bit_depth):
    levels = gray >> (8 - bit_depth)
    height, width = gray.shape
    data = raw_png(
        width, height, bit_depth=bit_depth, color_type=0,
        scanlines=[_packed(row, bit_depth) for row in levels],
    )  # fmt: skip
    return data, levels * (255 // (2**bit_depth - 1))


def sixteen_bit_png(gray, color_type, n_channels):
    """16 bits per channel: gray (+ opaque alpha) or RGB, each 257 * gray."""
    height, width = gray.shape
    channels = [gray.astype(">u2") * 257] * n_channels
    if color_type == 4:
        channels[-1] = np.full_like(channels[0], 65535)
    pixels = np.stack(channels, axis=-1)
    scanlines = [row.tobytes() for row in pixels]
    data = raw_png(width, height, bit_depth=16, color_type=color_type,
                   scanlines=scanlines)  # fmt: skip
    return data, gray


def _from_bytes(mode, *planes):
    return Image.frombytes(mode, planes[0].shape[::-1], np.dstack(planes).tobytes())


def _gray_palette(gray):
    image = Image.frombytes("P", gray.shape[::-1], gray.tobytes())
    image.putpalette(np.repeat(np.arange(256, dtype=np.uint8), 3).tobytes())
    return image


def _left_half_transparent(gray):
    alpha = np.full_like(gray, 255)
    alpha[:, : gray.shape[1] // 2] = 0
    expected = gray.copy()
    expected[:, : gray.shape[1] // 2] = 0
    return _from_bytes("RGBA", gray, gray, gray, alpha), expected


def _bilevel(gray):
    bright = gray > 127
    return Image.fromarray(bright), np.where(bright, 255, 0).astype(np.uint8)


def _sixteen_bit(gray):
    return gray.astype(np.uint16) * 257


def _gray_16(gray):
    return Image.fromarray(_sixteen_bit(gray))


def _gray_16_big_endian(gray):
    return Image.fromarray(_sixteen_bit(gray).astype(">u2"))


def _gray_32(gray):
    return Image.fromarray(_sixteen_bit(gray).astype(np.int32))


def _gray_float(gray):
    return Image.fromarray(gray.astype(np.float32) / 255)


def _rgb(gray):
    return _from_bytes("RGB", gray, gray, gray)


def _rgba_opaque(gray):
    return _from_bytes("RGBA", gray, gray, gray, np.full_like(gray, 255))


def _gray_alpha_opaque(gray):
    return _from_bytes("LA", gray, np.full_like(gray, 255))


def _cmyk(gray):
    no_ink = np.zeros_like(gray)
    return _from_bytes("CMYK", no_ink, no_ink, no_ink, 255 - gray)


def _ycbcr(gray):
    neutral = np.full_like(gray, 128)
    return _from_bytes("YCbCr", gray, neutral, neutral)


def _same(encode):
    return lambda gray: (encode(gray), gray)


# id: (suffix, save options or None for raw bytes, gray -> (image, 8-bit equivalent))
ENCODINGS = {
    "L-bmp": ("bmp", {}, _same(Image.fromarray)),
    "L-tiff": ("tif", {}, _same(Image.fromarray)),
    "L-gif": ("gif", {}, _same(Image.fromarray)),
    "L-webp-lossless": ("webp", {"lossless": True}, _same(Image.fromarray)),
    "png-named-jpeg": ("jpeg", {"format": "PNG"}, _same(Image.fromarray)),
    "1-bit-png": ("png", {}, _bilevel),
    "2-bit-gray-png": ("png", None, lambda gray: low_depth_gray_png(gray, 2)),
    "4-bit-gray-png": ("png", None, lambda gray: low_depth_gray_png(gray, 4)),
    "I;16-png": ("png", {}, _same(_gray_16)),
    "I;16B-tiff": ("tif", {}, _same(_gray_16_big_endian)),
    "I-tiff": ("tif", {}, _same(_gray_32)),
    "F-tiff": ("tif", {}, _same(_gray_float)),
    "16-bit-gray-alpha-png": ("png", None, lambda gray: sixteen_bit_png(gray, 4, 2)),
    "48-bit-rgb-png": ("png", None, lambda gray: sixteen_bit_png(gray, 2, 3)),
    "RGB-png": ("png", {}, _same(_rgb)),
    "RGBA-opaque-png": ("png", {}, _same(_rgba_opaque)),
    "RGBA-half-transparent-png": ("png", {}, _left_half_transparent),
    "LA-png": ("png", {}, _same(_gray_alpha_opaque)),
    "P-gray-palette-png": ("png", {}, _same(_gray_palette)),
    "CMYK-tiff": ("tif", {}, _same(_cmyk)),
    "YCbCr-tiff": ("tif", {}, _same(_ycbcr)),
}
LOSSY_ENCODINGS = {
    "L-jpeg": ("jpeg", {"quality": 95}, _same(Image.fromarray)),
    "RGB-jpeg": ("jpg", {"quality": 95}, _same(_rgb)),
}


def write_encoded(folder, pictures, encoding):
    """Write each 8-bit picture in ``encoding``; return the paths and equivalents."""
    suffix, options, encode = encoding
    paths, equivalents = [], []
    for index, gray in enumerate(pictures):
        image, equivalent = encode(gray)
        path = folder / f"{index}.{suffix}"
        if options is None:
            path.write_bytes(image)
        else:
            image.save(path, **options)
        paths.append(path)
        equivalents.append(equivalent)
    return paths, np.array(equivalents)


@pytest.mark.parametrize("encoding", ENCODINGS, ids=list(ENCODINGS))
def test_every_mode_and_depth_loads_and_predicts_like_8_bit_gray(
    encoding, held_out_gray, awkward_pipeline, tmp_path
):
    paths, equivalents = write_encoded(tmp_path, held_out_gray, ENCODINGS[encoding])

    images = ImageLoader(image_size=SIDE).transform(paths)
    np.testing.assert_allclose(images[..., 0], equivalents / 255, atol=1e-6)

    twins = [save_image(Image.fromarray(gray), tmp_path / f"twin_{index}.png")
             for index, gray in enumerate(equivalents)]  # fmt: skip
    np.testing.assert_allclose(
        awkward_pipeline.predict_proba(paths),
        awkward_pipeline.predict_proba(twins),
        atol=1e-6,
    )


@pytest.mark.parametrize("encoding", LOSSY_ENCODINGS, ids=list(LOSSY_ENCODINGS))
def test_lossy_files_predict_close_to_their_source(
    encoding, held_out_gray, held_out_files, awkward_pipeline, tmp_path
):
    paths, _ = write_encoded(tmp_path, held_out_gray, LOSSY_ENCODINGS[encoding])

    images = ImageLoader(image_size=SIDE).transform(paths)
    assert np.abs(images[..., 0] - held_out_gray / 255).mean() < 0.02
    np.testing.assert_allclose(
        awkward_pipeline.predict_proba(paths), held_out_files[1], atol=0.02
    )


def test_labels_come_out_the_same_whatever_the_encoding(
    held_out_gray, held_out_files, awkward_pipeline, tmp_path
):
    paths, _ = write_encoded(tmp_path, held_out_gray, ENCODINGS["I;16-png"])

    np.testing.assert_array_equal(
        awkward_pipeline.predict(paths), awkward_pipeline.predict(held_out_files[0])
    )


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_files_beyond_the_first_read_load_like_files_read_whole(tmp_path, suffix):
    big = noise_jpeg(tmp_path / f"big.{suffix}", "RGB", (700, 700))
    small = noise_jpeg(tmp_path / f"small.{suffix}", "RGB", (90, 70))
    assert big.stat().st_size > _decode._FIRST_READ_BYTES > small.stat().st_size
    paths = [small, big, small, big]

    images = ImageLoader(image_size=32, cache=False, n_jobs=2).transform(paths)

    for image, path in zip(images, paths, strict=True):
        read_by_itself = _decode.decode_image(str(path), (32, 32), "stretch")
        np.testing.assert_array_equal(image[:, :, 0], read_by_itself / np.float32(255))


def test_a_small_file_is_opened_once_and_read_in_one_call(tmp_path, monkeypatch):
    paths = [
        noise_jpeg(tmp_path / "plain.jpg", "L", (40, 30)),
        save(Image.new("L", (40, 30), 90), tmp_path / "gray.png"),
    ]
    calls = []

    class CountedFile(io.FileIO):
        def read(self, *args):
            calls.append(("read", self.name))
            return super().read(*args)

    def counted_open(path, mode="r", *args, **kwargs):
        calls.append(("open", os.fspath(path)))
        return CountedFile(path, mode)

    monkeypatch.setattr(_decode, "open", counted_open, raising=False)
    ImageLoader(image_size=16, cache=False).transform(paths)

    for path in map(str, paths):
        assert calls.count(("open", path)) == 1
        assert calls.count(("read", path)) == 1
