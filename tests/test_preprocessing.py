import os
import pickle
import shutil
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from awkward import (
    PNG_SIGNATURE,
    SIDE,
    dangling_symlink,
    decompression_bomb,
    moderate_bomb,
    named_pipe,
    png_chunk,
    png_declaring,
    raw_png,
    save_image,
    symlink_loop,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError

from pneumoclf.preprocessing import (
    DEFAULT_CACHE_LIMIT,
    ImageLoader,
    ImageLoadError,
    _decode,
    _jpeg,
    _reading,
    cache_info,
    clear_cache,
    set_cache_limit,
)

EXIF_ORIENTATION = 0x0112


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    previous_limit = set_cache_limit(DEFAULT_CACHE_LIMIT)
    yield
    set_cache_limit(previous_limit)
    clear_cache()


def save(image, path, **options):
    image.save(path, **options)
    return path


def gray_file(folder, name, shade, size=(20, 20)):
    return save(Image.new("L", size, shade), folder / name)


def flatten(images):
    return images.reshape(len(images), -1)


# --- output form -------------------------------------------------------------------


def test_output_is_float32_in_unit_range_with_one_channel(tmp_path):
    shades = [0, 51, 204, 255]
    paths = [
        gray_file(tmp_path, f"{shade}.png", shade, size=(10 + shade % 7, 13))
        for shade in shades
    ]

    images = ImageLoader(image_size=12).fit_transform(paths)

    assert images.shape == (4, 12, 12, 1)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_allclose(images[:, 6, 6, 0], np.array(shades) / 255, atol=1e-6)


def test_tuple_image_size_is_height_then_width(tmp_path):
    top_white = np.zeros((20, 30), dtype=np.uint8)
    top_white[:10] = 255
    path = save(Image.fromarray(top_white), tmp_path / "top.png")

    images = ImageLoader(image_size=(8, 12)).transform([path])

    assert images.shape == (1, 8, 12, 1)
    np.testing.assert_allclose(images[0, :3, :, 0], 1.0)
    np.testing.assert_allclose(images[0, 5:, :, 0], 0.0)


@pytest.mark.parametrize(
    ("image_size", "shape"), [(16, (16, 16, 1)), ((8, 12), (8, 12, 1))]
)
def test_image_shape_is_the_shape_of_each_image_transform_returns(
    tmp_path, image_size, shape
):
    loader = ImageLoader(image_size=image_size)

    assert loader.image_shape == shape
    assert loader.transform([gray_file(tmp_path, "a.png", 10)]).shape[1:] == shape


def test_numpy_integers_are_accepted_as_image_size(tmp_path):
    path = gray_file(tmp_path, "a.png", 255)

    for image_size in (np.int64(6), (np.int32(6), np.int64(3))):
        images = ImageLoader(image_size=image_size).fit_transform([path])
        assert images.shape[1:3] == (6, 6 if np.ndim(image_size) == 0 else 3)


def test_stretch_fills_the_whole_target(tmp_path):
    path = gray_file(tmp_path, "wide.png", 255, size=(40, 10))

    images = ImageLoader(image_size=16, resize="stretch").transform([path])

    np.testing.assert_allclose(images, 1.0)


def bright_square_picture(tmp_path):
    """An 80 x 40 black picture holding a 20 x 20 white square in its middle."""
    pixels = np.zeros((40, 80), dtype=np.uint8)
    pixels[10:30, 30:50] = 255
    return save(Image.fromarray(pixels), tmp_path / "square.png")


def bright_box(image):
    rows, columns = np.nonzero(image[:, :, 0] > 0.5)
    return rows.min(), rows.max(), columns.min(), columns.max()


def test_pad_keeps_a_square_square_and_centres_the_picture(tmp_path):
    path = bright_square_picture(tmp_path)

    image = ImageLoader(image_size=16, resize="pad").transform([path])[0]

    # The 80 x 40 picture becomes 16 x 8, with 4 rows of padding above and below.
    assert bright_box(image) == (6, 9, 6, 9)
    assert np.all(image[:4] == 0.0)
    assert np.all(image[12:] == 0.0)


def test_stretch_makes_the_same_square_a_tall_rectangle(tmp_path):
    path = bright_square_picture(tmp_path)

    image = ImageLoader(image_size=16, resize="stretch").transform([path])[0]

    top, bottom, left, right = bright_box(image)
    assert (bottom - top + 1, right - left + 1) == (8, 4)


def test_pad_fills_borders_with_exact_zeros_around_a_gray_picture(tmp_path):
    path = gray_file(tmp_path, "tall.png", 128, size=(10, 30))

    image = ImageLoader(image_size=12, resize="pad").transform([path])[0, :, :, 0]

    np.testing.assert_allclose(image[:, 4:8], 128 / 255, atol=1e-6)
    assert np.all(image[:, :4] == 0.0)
    assert np.all(image[:, 8:] == 0.0)


# --- image modes -------------------------------------------------------------------


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


# --- unreadable files --------------------------------------------------------------


def truncated_copy(path):
    data = path.read_bytes()
    truncated = path.with_name("truncated_" + path.name)
    truncated.write_bytes(data[: len(data) // 2])
    return truncated


def noisy_image(size=(64, 64)):
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8))


def missing_file(tmp_path):
    return tmp_path / "missing.png"


def directory(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    return path


def empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    return path


def text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image at all\n")
    return path


def truncated_jpeg(tmp_path):
    return truncated_copy(save(noisy_image(), tmp_path / "noise.jpg"))


def truncated_png(tmp_path):
    return truncated_copy(save(noisy_image(), tmp_path / "noise.png"))


@pytest.mark.parametrize(
    ("make_file", "reason"),
    [
        (missing_file, "file not found"),
        (directory, "is a directory"),
        (empty_file, "empty file"),
        (text_file, "not an image"),
        (truncated_jpeg, "truncated"),
        (truncated_png, "truncated"),
    ],
)
def test_an_unreadable_file_is_named_with_its_reason(tmp_path, make_file, reason):
    path = make_file(tmp_path)

    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=8).transform([path])

    assert raised.value.failures == [(path, raised.value.failures[0][1])]
    assert reason in raised.value.failures[0][1]
    assert f"{path}: {reason}" in str(raised.value)
    assert str(raised.value).startswith("1 of 1 images could not be read:")


def test_truncated_files_are_not_accepted_even_from_the_cache(tmp_path):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    path = truncated_jpeg(tmp_path)

    for _ in range(2):
        with pytest.raises(ImageLoadError, match="truncated"):
            ImageLoader(image_size=8).transform([path])
    assert cache_info().entries == 0


def test_images_above_twice_the_pixel_limit_are_refused(tmp_path, monkeypatch):
    path = gray_file(tmp_path, "huge.png", 10, size=(30, 30))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with pytest.raises(ImageLoadError, match="decompression bomb"):
        ImageLoader(image_size=8).transform([path])


def test_images_just_above_the_pixel_limit_are_refused(tmp_path, monkeypatch):
    path = gray_file(tmp_path, "large.png", 10, size=(15, 10))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with (
        pytest.warns(Image.DecompressionBombWarning),
        pytest.raises(ImageLoadError, match=r"too many pixels \(15 x 10 = 150 > "),
    ):
        ImageLoader(image_size=8).transform([path])


def test_the_pixel_limit_still_holds_when_warnings_are_errors(tmp_path, monkeypatch):
    path = gray_file(tmp_path, "large.png", 10, size=(15, 10))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageLoadError, match="decompression bomb"):
            ImageLoader(image_size=8).transform([path])


def test_permission_denied_is_reported(tmp_path, monkeypatch):
    path = gray_file(tmp_path, "secret.png", 10)

    def refusing_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return open(file, *args, **kwargs)

    # Tests may run as root, whom file permissions do not stop.
    monkeypatch.setattr(_decode, "open", refusing_open, raising=False)

    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=8).transform([path])

    assert raised.value.failures == [(path, "permission denied")]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="file permissions do not bind the superuser",
)
def test_an_unreadable_file_mode_is_reported_as_permission_denied(tmp_path):
    path = gray_file(tmp_path, "locked.png", 10)
    path.chmod(0)
    try:
        with pytest.raises(ImageLoadError) as raised:
            ImageLoader(image_size=8).transform([path])
    finally:
        path.chmod(0o644)

    assert raised.value.failures == [(path, "permission denied")]


def test_one_error_lists_every_unreadable_file_in_input_order(tmp_path):
    good = [gray_file(tmp_path, f"good_{index}.png", 100) for index in range(3)]
    missing = missing_file(tmp_path)
    empty = empty_file(tmp_path)
    text = text_file(tmp_path)
    paths = [missing, good[0], empty, good[1], text, good[2]]

    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=8, n_jobs=2).transform(paths)

    error = raised.value
    assert [path for path, _ in error.failures] == [missing, empty, text]
    assert error.n_images == 6
    message = str(error)
    assert message.startswith("3 of 6 images could not be read:\n")
    assert f"  {missing}: file not found" in message
    assert f"  {empty}: empty file" in message
    assert f"  {text}: not an image" in message
    assert isinstance(error, ValueError)


def test_the_error_survives_pickling(tmp_path):
    error = ImageLoadError([(tmp_path / "a.png", "file not found")], n_images=4)

    restored = pickle.loads(pickle.dumps(error))

    assert restored.failures == error.failures
    assert restored.n_images == 4
    assert str(restored) == str(error)


# --- the form of X -----------------------------------------------------------------


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="at least one image path"):
        ImageLoader().transform([])


def test_entries_that_are_not_paths_are_named_by_position(tmp_path):
    path = gray_file(tmp_path, "ok.png", 10)

    with pytest.raises(ValueError) as raised:
        ImageLoader().transform([path, None, 3.5, ""])

    message = str(raised.value)
    assert "3 entries are not" in message
    assert "position 1: None (NoneType)" in message
    assert "position 2: 3.5 (float)" in message
    assert "position 3: '' (empty string)" in message


def test_a_single_path_is_refused_with_a_hint(tmp_path):
    path = gray_file(tmp_path, "ok.png", 10)

    with pytest.raises(ValueError, match="wrap it in a list"):
        ImageLoader().transform(path)


def test_a_table_of_several_columns_is_refused(tmp_path):
    path = str(gray_file(tmp_path, "ok.png", 10))

    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        ImageLoader().fit(np.array([[path, path]]))


@pytest.mark.parametrize(
    "as_input",
    [
        list,
        tuple,
        lambda paths: [str(path) for path in paths],
        lambda paths: np.array([str(path) for path in paths]),
        lambda paths: np.array(paths, dtype=object),
        lambda paths: np.array([str(path) for path in paths]).reshape(-1, 1),
        lambda paths: (path for path in paths),
    ],
    ids=["paths", "tuple", "str", "str-array", "object-array", "column", "generator"],
)
def test_paths_come_in_any_sequence(tmp_path, as_input):
    paths = [gray_file(tmp_path, f"{shade}.png", shade) for shade in (0, 255)]

    images = ImageLoader(image_size=4).transform(as_input(paths))

    np.testing.assert_allclose(images[:, 0, 0, 0], [0.0, 1.0])


def test_a_one_column_dataframe_is_accepted(tmp_path):
    pd = pytest.importorskip("pandas")
    paths = [str(gray_file(tmp_path, f"{shade}.png", shade)) for shade in (0, 255)]

    images = ImageLoader(image_size=4).transform(pd.DataFrame({"path": paths}))

    np.testing.assert_allclose(images[:, 0, 0, 0], [0.0, 1.0])


def test_paths_with_spaces_and_non_ascii_characters(tmp_path):
    folder = tmp_path / "dossier été"
    folder.mkdir()
    path = gray_file(folder, "radio thorax ñandú 肺.png", 204)

    images = ImageLoader(image_size=4).transform([path, str(path)])

    np.testing.assert_allclose(images, 0.8, atol=1e-6)


@pytest.mark.parametrize("n_jobs", [1, 2, -1, None])
def test_the_number_of_threads_does_not_change_the_result(tmp_path, n_jobs):
    paths = [gray_file(tmp_path, f"{shade}.png", shade) for shade in range(0, 250, 25)]

    images = ImageLoader(image_size=4, n_jobs=n_jobs, cache=False).transform(paths)

    np.testing.assert_allclose(images[:, 2, 2, 0], np.arange(0, 250, 25) / 255)


def test_files_decoded_in_chunks_land_in_their_rows(tmp_path):
    # Enough files for the threads to take many at a time, a few of them bad.
    shades = np.arange(300) % 251
    paths = [
        gray_file(tmp_path, f"{i}.png", int(shade), (4, 4))
        for i, shade in enumerate(shades)
    ]
    images = ImageLoader(image_size=2, n_jobs=2, cache=False).transform(paths)
    np.testing.assert_allclose(images[:, 0, 0, 0], shades / 255)

    bad = [17, 150, 299]
    for row in bad:
        paths[row].write_text("not an image")
    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=2, n_jobs=2, cache=False).transform(paths)
    assert [path for path, _ in raised.value.failures] == [paths[row] for row in bad]


# --- cache -------------------------------------------------------------------------


@pytest.fixture
def decode_calls(monkeypatch):
    calls = []
    original_decode = _reading.decode_image

    def counting_decode(path, *args):
        calls.append(path)
        return original_decode(path, *args)

    monkeypatch.setattr(_reading, "decode_image", counting_decode)
    return calls


def test_a_second_transform_does_not_decode_again(tmp_path, decode_calls):
    paths = [gray_file(tmp_path, f"{shade}.png", shade) for shade in (10, 20, 30)]
    loader = ImageLoader(image_size=8)

    first = loader.transform(paths)
    second = clone(loader).transform(paths)

    assert len(decode_calls) == 3
    np.testing.assert_array_equal(first, second)
    assert cache_info()[:3] == (3, 3, 3)  # hits, misses, entries


def test_cached_and_decoded_images_of_any_depth_land_in_their_rows(tmp_path):
    eight_bit = [
        gray_file(tmp_path, f"{shade}.png", shade) for shade in range(0, 250, 9)
    ]
    sixteen_bit = save(Image.new("I;16", (20, 20), 30000), tmp_path / "deep.png")
    paths = [*eight_bit[:10], sixteen_bit, *eight_bit[10:]]
    expected = ImageLoader(image_size=4, cache=False).transform(paths)
    loader = ImageLoader(image_size=4, n_jobs=2)

    loader.transform(paths[::3])  # every third file is cached, the others are not
    mixed = loader.transform(paths)
    all_cached = loader.transform(paths)

    np.testing.assert_array_equal(mixed, expected)
    np.testing.assert_array_equal(all_cached, expected)
    assert expected[10, 0, 0, 0] == np.float32(30000 / 65535)


def test_without_cache_every_transform_decodes(tmp_path, decode_calls):
    paths = [gray_file(tmp_path, f"{shade}.png", shade) for shade in (10, 20)]

    for _ in range(2):
        ImageLoader(image_size=8, cache=False).transform(paths)

    assert len(decode_calls) == 4
    assert cache_info().entries == 0


def test_each_target_size_and_resize_policy_has_its_own_entry(tmp_path, decode_calls):
    path = gray_file(tmp_path, "wide.png", 255, size=(20, 10))

    stretched = ImageLoader(image_size=8).transform([path])
    padded = ImageLoader(image_size=8, resize="pad").transform([path])
    larger = ImageLoader(image_size=(8, 12)).transform([path])

    assert len(decode_calls) == 3
    assert stretched[0, 0, 0, 0] == 1.0 and padded[0, 0, 0, 0] == 0.0
    assert larger.shape == (1, 8, 12, 1)


def test_a_modified_file_is_read_again(tmp_path, decode_calls):
    path = gray_file(tmp_path, "changing.png", 50)
    loader = ImageLoader(image_size=4)
    before = loader.transform([path])

    save(Image.new("L", (20, 20), 150), path)
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    after = loader.transform([path])

    assert len(decode_calls) == 2
    np.testing.assert_allclose(before, 50 / 255, atol=1e-6)
    np.testing.assert_allclose(after, 150 / 255, atol=1e-6)


@pytest.mark.parametrize("rewrite", ["in-place", "copy2"])
def test_a_rewrite_that_keeps_size_and_time_is_read_again(
    tmp_path, decode_calls, rewrite
):
    path = gray_file(tmp_path, "same.bmp", 50)
    replacement = gray_file(tmp_path, "other.bmp", 150)
    assert path.stat().st_size == replacement.stat().st_size
    loader = ImageLoader(image_size=4)
    before = loader.transform([path])
    status = path.stat()

    if rewrite == "in-place":
        path.write_bytes(replacement.read_bytes())
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    else:
        os.utime(replacement, ns=(status.st_atime_ns, status.st_mtime_ns))
        shutil.copy2(replacement, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (
        status.st_size,
        status.st_mtime_ns,
    )
    after = loader.transform([path])

    assert len(decode_calls) == 2
    np.testing.assert_allclose(before, 50 / 255, atol=1e-6)
    np.testing.assert_allclose(after, 150 / 255, atol=1e-6)


def test_the_cache_bound_is_respected_least_recent_first(tmp_path, decode_calls):
    paths = [gray_file(tmp_path, f"{index}.png", index) for index in range(5)]
    entry_bytes = 8 * 8  # one 8 x 8 image of 8-bit pixels
    set_cache_limit(2 * entry_bytes)
    loader = ImageLoader(image_size=8, n_jobs=1)

    loader.transform(paths)
    assert cache_info().entries == 2
    assert cache_info().nbytes == 2 * entry_bytes

    loader.transform(paths[3:])  # the two most recent are kept
    assert len(decode_calls) == 5
    loader.transform(paths[:1])  # the oldest was evicted
    assert len(decode_calls) == 6


def test_lowering_the_bound_evicts_and_zero_turns_caching_off(tmp_path):
    paths = [gray_file(tmp_path, f"{index}.png", index) for index in range(3)]
    ImageLoader(image_size=8).transform(paths)
    assert cache_info().entries == 3

    previous = set_cache_limit(0)

    assert previous == DEFAULT_CACHE_LIMIT
    assert cache_info()[2:] == (0, 0, 0)  # entries, nbytes, max_nbytes
    ImageLoader(image_size=8).transform(paths)
    assert cache_info().entries == 0


@pytest.mark.parametrize("bad_limit", [-1, 1.5, "100", True])
def test_the_cache_bound_must_be_a_non_negative_integer(bad_limit):
    with pytest.raises(ValueError, match="non-negative integer"):
        set_cache_limit(bad_limit)


def test_returned_arrays_are_independent_of_the_cache(tmp_path):
    path = gray_file(tmp_path, "shared.png", 51)
    loader = ImageLoader(image_size=4)

    first = loader.transform([path, path])
    first[:] = 9.0
    second = loader.transform([path])

    np.testing.assert_allclose(second, 0.2, atol=1e-6)
    assert not np.shares_memory(first, second)


def test_clear_cache_forgets_images_and_statistics(tmp_path):
    ImageLoader(image_size=4).transform([gray_file(tmp_path, "a.png", 1)])

    clear_cache()

    assert cache_info()[:4] == (0, 0, 0, 0)


# --- scikit-learn conventions ------------------------------------------------------


def test_parameters_are_stored_unchanged():
    params = {
        "image_size": (32, 48), "resize": "pad", "n_jobs": 3, "cache": False,
        "normalize": "equalize",
    }  # fmt: skip

    loader = ImageLoader(**params)

    assert loader.get_params() == params
    assert loader.set_params(image_size=16).image_size == 16


def test_clone_and_pickle_keep_parameters_and_results(tmp_path):
    path = gray_file(tmp_path, "a.png", 102)
    loader = ImageLoader(image_size=(4, 6), resize="pad", n_jobs=1)

    for copy in (clone(loader), pickle.loads(pickle.dumps(loader.fit([path])))):
        assert copy.get_params() == loader.get_params()
        np.testing.assert_array_equal(copy.transform([path]), loader.transform([path]))


def test_fit_learns_nothing_and_transform_needs_no_fit(tmp_path):
    path = gray_file(tmp_path, "a.png", 102)
    loader = ImageLoader(image_size=4)

    assert loader.fit([path]) is loader
    assert vars(loader) == ImageLoader(image_size=4).__dict__
    np.testing.assert_allclose(ImageLoader(image_size=4).transform([path]), 0.4)


def test_tags_describe_a_stateless_loader_of_paths():
    tags = get_tags(ImageLoader())

    assert tags.requires_fit is False
    assert tags.input_tags.string is True
    assert tags.input_tags.one_d_array is True
    assert tags.input_tags.two_d_array is False


@pytest.mark.parametrize(
    "params",
    [
        {"image_size": 0},
        {"image_size": -3},
        {"image_size": 2.5},
        {"image_size": (0, 8)},
        {"image_size": (8,)},
        {"image_size": (8, 8, 1)},
        {"image_size": (8.0, 8)},
        {"resize": "bogus"},
        {"n_jobs": 0},
        {"cache": "yes"},
    ],
)
@pytest.mark.parametrize("method", ["fit", "transform"])
def test_invalid_parameters_are_refused(tmp_path, params, method):
    path = gray_file(tmp_path, "a.png", 1)

    with pytest.raises(InvalidParameterError):
        getattr(ImageLoader(**params), method)([path])


def test_grid_search_tunes_the_image_size_of_a_pipeline(tmp_path):
    # Bright pictures have a lighter centre; the label is which one.
    paths, labels = [], []
    for index in range(12):
        label = index % 2
        pixels = np.full((20, 20), 40 + index, dtype=np.uint8)
        pixels[6:14, 6:14] = 200 if label else 60
        paths.append(save(Image.fromarray(pixels), tmp_path / f"{index}.png"))
        labels.append(label)
    pipe = Pipeline(
        [
            ("load", ImageLoader()),
            ("flatten", FunctionTransformer(flatten)),
            ("clf", LogisticRegression()),
        ]
    )

    search = GridSearchCV(pipe, {"load__image_size": [4, 8]}, cv=3, error_score="raise")
    search.fit(paths, labels)

    assert list(search.cv_results_["param_load__image_size"]) == [4, 8]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], 1.0)
    assert search.best_estimator_.named_steps["load"].image_size in (4, 8)
    np.testing.assert_array_equal(search.predict(paths), labels)


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


# ----------------------------------------------------- broken and hostile files


def zero_width_png(folder):
    path = folder / "zero.png"
    path.write_bytes(png_declaring(0, 16))
    return path


def corrupt_pixel_stream(folder):
    path = folder / "garbled.png"
    header = struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)
    path.write_bytes(
        PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"garbage")
        + png_chunk(b"IEND", b"")
    )  # fmt: skip
    return path


def sparse_jpeg_start(folder):
    """1 GiB, almost all of it a hole: a JPEG start and nothing a decoder can use."""
    path = folder / "sparse.jpeg"
    with path.open("wb") as file:
        file.write(b"\xff\xd8\xff\xe0")
        file.truncate(1024**3)
    return path


def padded_jpeg(folder):
    """A real JPEG header and picture, followed by a 1 GiB hole."""
    path = save(noisy_image(), folder / "padded.jpeg")
    with path.open("r+b") as file:
        file.truncate(1024**3)
    return path


def jpeg_magic_only(folder):
    path = folder / "stub.jpeg"
    path.write_bytes(b"\xff\xd8\xff")
    return path


HOSTILE_FILES = [
    (decompression_bomb, "too many pixels; possible decompression bomb"),
    (moderate_bomb, "too many pixels (10000 x 10000 = 100000000 > "),
    (symlink_loop, "Too many levels of symbolic links"),
    (dangling_symlink, "broken symbolic link"),
    (named_pipe, "not a regular file"),
    (zero_width_png, "not an image"),
    (corrupt_pixel_stream, "corrupt or unsupported image"),
    (jpeg_magic_only, "corrupt or truncated JPEG (its header ends early)"),
    (sparse_jpeg_start, "corrupt JPEG (no complete header in its first 16 MiB)"),
    (padded_jpeg, "implausibly large for a 64 x 64 JPEG"),
]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("make_file", "reason"),
    HOSTILE_FILES,
    ids=[make_file.__name__ for make_file, _ in HOSTILE_FILES],
)
def test_hostile_files_are_named_with_their_reason(tmp_path, make_file, reason):
    good = save_image(Image.new("L", (8, 8), 90), tmp_path / "good.png")
    path = make_file(tmp_path)

    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=8).transform([good, path])

    assert raised.value.failures == [(path, raised.value.failures[0][1])]
    assert reason in raised.value.failures[0][1]
    assert str(raised.value).startswith("1 of 2 images could not be read:")


@pytest.mark.parametrize("make_file", [sparse_jpeg_start, padded_jpeg])
def test_a_huge_jpeg_costs_no_more_than_its_header(tmp_path, make_file):
    path = make_file(tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError):
            ImageLoader(image_size=8, cache=False).transform([path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 20 * 1024**2


def test_a_bomb_is_refused_without_decoding_it(tmp_path):
    path = decompression_bomb(tmp_path)

    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError):
            ImageLoader(image_size=8, cache=False).transform([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024**2


def test_a_symlink_to_an_image_loads_like_the_image(tmp_path):
    target = save_image(Image.new("L", (8, 8), 51), tmp_path / "target.png")
    os.symlink(target, tmp_path / "link.jpeg")

    images = ImageLoader(image_size=4).transform([tmp_path / "link.jpeg"])

    np.testing.assert_allclose(images, 0.2, atol=1e-6)


@pytest.mark.parametrize("path", ["scan\0.png", Path("a") / "b\0c.png"])
def test_a_path_with_a_null_character_is_refused_by_position(path):
    with pytest.raises(
        ValueError, match=r"position 0: .* \(contains a null character\)"
    ):
        ImageLoader().fit([path])


def test_bytes_paths_are_refused_by_position(tmp_path):
    path = save_image(Image.new("L", (8, 8), 51), tmp_path / "a.png")

    with pytest.raises(ValueError, match=r"position 1: b'.*a\.png' \(bytes\)"):
        ImageLoader().transform([path, os.fsencode(path)])


# ----------------------------------------------------------- invalid parameters


@pytest.mark.parametrize(
    "params",
    [
        {"image_size": True}, {"image_size": None}, {"image_size": "64"},
        {"image_size": [8, 8]}, {"image_size": (8, True)}, {"resize": "PAD"},
        {"resize": None}, {"n_jobs": 1.5}, {"n_jobs": "2"}, {"cache": None},
        {"cache": 1},
    ],
    ids=str,
)  # fmt: skip
def test_invalid_loader_parameters_are_named(params, held_out_files):
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(params))}'"):
        ImageLoader(**params).transform(held_out_files[0][:1])


# ---------------------------------------- geometry of any size, mode and target


@pytest.fixture(scope="module")
def geometry_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("geometry")


WHITE = {"L": 255, "RGB": (255, 255, 255), "I;16": 65535}
sides = st.integers(1, 64)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    mode=st.sampled_from(sorted(WHITE)),
    resize=st.sampled_from(["stretch", "pad"]),
    image_size=st.one_of(sides, st.tuples(sides, sides)),
)
def test_loader_geometry_for_any_size_mode_and_target(
    geometry_folder, width, height, mode, resize, image_size
):
    path = geometry_folder / f"{mode.replace(';', '')}_{width}x{height}.png"
    Image.new(mode, (width, height), WHITE[mode]).save(path)
    target_h, target_w = (
        (image_size,) * 2 if isinstance(image_size, int) else image_size
    )

    images = ImageLoader(image_size=image_size, resize=resize, cache=False).transform(
        [path]
    )

    assert images.shape == (1, target_h, target_w, 1)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    picture = images[0, :, :, 0]
    if resize == "stretch":
        np.testing.assert_allclose(picture, 1.0, atol=1e-6)
        return
    rows = np.flatnonzero(picture.any(axis=1))
    columns = np.flatnonzero(picture.any(axis=0))
    top, left = rows[0], columns[0]
    fitted_h, fitted_w = rows[-1] + 1 - top, columns[-1] + 1 - left
    np.testing.assert_allclose(
        picture[top : top + fitted_h, left : left + fitted_w], 1.0, atol=1e-6
    )
    assert np.count_nonzero(picture) == fitted_h * fitted_w  # exact zeros elsewhere
    assert (top, left) == ((target_h - fitted_h) // 2, (target_w - fitted_w) // 2)
    assert fitted_h == target_h or fitted_w == target_w
    scale = min(target_h / height, target_w / width)
    assert abs(fitted_h - max(1, height * scale)) <= 1
    assert abs(fitted_w - max(1, width * scale)) <= 1


# ----------------------------------------------------------------------- memory


def test_loading_many_files_holds_one_output_and_no_copy_of_the_images(tmp_path):
    n_images, side = 300, 96
    rng = np.random.default_rng(0)
    paths = [
        save_image(Image.fromarray(rng.integers(0, 256, (side, side), np.uint8)),
                   tmp_path / f"{index}.png")
        for index in range(n_images)
    ]  # fmt: skip
    # Bookkeeping of the threads and paths, about 2 KiB a path; a second copy
    # of the images would take 2.6 MiB even at 8 bits.
    allowance = 1.5 * 1024**2

    for cache in (False, True):
        clear_cache()
        tracemalloc.start()
        try:
            images = ImageLoader(image_size=side, cache=cache).transform(paths)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        cached = cache_info().nbytes
        assert cached == (n_images * side * side if cache else 0)
        assert images.nbytes == n_images * side * side * 4
        assert peak < images.nbytes + cached + allowance, cache
    clear_cache()


@pytest.mark.parametrize(
    ("image", "bytes_per_pixel"),
    [
        (Image.new("L", (20, 30), 7), 1),
        (Image.new("RGB", (20, 30), (7, 8, 9)), 1),
        (Image.new("I;16", (20, 30), 7000), 4),
        (Image.new("F", (20, 30), 0.5), 4),
    ],
    ids=["L", "RGB", "I;16", "F"],
)
def test_the_cache_holds_the_documented_bytes_per_pixel(
    tmp_path, image, bytes_per_pixel
):
    path = save_image(image, tmp_path / "image.tif")
    clear_cache()

    ImageLoader(image_size=(12, 10)).transform([path])

    assert cache_info().nbytes == 12 * 10 * bytes_per_pixel
    clear_cache()


# ----------------------------------------------------------- intensity normalisation


def test_equalized_images_do_not_depend_on_exposure_contrast_or_gamma(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(30, 220, size=(32, 32)).astype(np.float64)
    renderings = {
        "as_is": gray,
        "gamma": 255 * (gray / 255) ** 1.8,
        "contrast": 128 + 0.6 * (gray - 128),
        "exposure": gray + 30,
    }
    paths = [
        save_image(Image.fromarray(np.round(v).astype(np.uint8)), tmp_path / f"{k}.png")
        for k, v in renderings.items()
    ]
    plain = ImageLoader(image_size=32).transform(paths)
    equalized = ImageLoader(image_size=32, normalize="equalize").transform(paths)

    assert not np.array_equal(plain[0], plain[1])
    for image in equalized[1:]:
        # Rounding to 8 bits may merge a few neighbouring levels.
        assert np.abs(image - equalized[0]).max() < 0.02
    assert equalized.min() == 0.0 and equalized.max() == 1.0


def test_equalization_spreads_the_levels_evenly(tmp_path):
    levels = np.repeat(np.arange(100, 116, dtype=np.uint8), 16).reshape(16, 16)
    path = save_image(Image.fromarray(levels), tmp_path / "narrow.png")
    image = ImageLoader(image_size=16, normalize="equalize").transform([path])[
        0, ..., 0
    ]
    np.testing.assert_allclose(np.unique(image), np.linspace(0, 1, 16), atol=1e-6)


def test_an_image_of_one_level_equalizes_to_zeros(tmp_path):
    path = save_image(Image.new("L", (8, 8), 77), tmp_path / "flat.png")
    image = ImageLoader(image_size=8, normalize="equalize").transform([path])
    np.testing.assert_array_equal(image, 0.0)


def test_the_cache_keeps_the_pixels_before_normalisation(tmp_path):
    path = gray_file(tmp_path, "a.png", 60)
    ImageLoader(image_size=8, normalize="equalize").transform([path])
    plain = ImageLoader(image_size=8).transform([path])
    assert cache_info().hits == 1
    np.testing.assert_allclose(plain, 60 / 255)


@pytest.mark.parametrize("normalize", ["EQUALIZE", "clahe", True])
def test_an_unknown_normalisation_is_named(normalize, tmp_path):
    path = gray_file(tmp_path, "a.png", 60)
    with pytest.raises(InvalidParameterError, match="'normalize'"):
        ImageLoader(normalize=normalize).transform([path])
