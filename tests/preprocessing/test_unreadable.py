"""Files ImageLoader cannot read, broken or hostile: each named with its reason."""

import os
import pickle
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from awkward import (
    PNG_SIGNATURE,
    dangling_symlink,
    decompression_bomb,
    moderate_bomb,
    named_pipe,
    png_chunk,
    png_declaring,
    save_image,
    symlink_loop,
)
from imagefiles import gray_file, save
from PIL import Image, ImageFile

from pneumoclf.preprocessing import (
    ImageLoader,
    ImageLoadError,
    _decode,
    cache_info,
)

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


# ------------------------------------------------- more broken and hostile files


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


UNREADABLE_FILES = [
    (missing_file, "file not found"),
    (directory, "is a directory"),
    (empty_file, "empty file"),
    (text_file, "not an image"),
    (truncated_jpeg, "truncated"),
    (truncated_png, "truncated"),
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
    UNREADABLE_FILES,
    ids=[make_file.__name__ for make_file, _ in UNREADABLE_FILES],
)
def test_an_unreadable_file_is_named_with_its_reason(tmp_path, make_file, reason):
    good = save_image(Image.new("L", (8, 8), 90), tmp_path / "good.png")
    path = make_file(tmp_path)

    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=8).transform([good, path])

    assert raised.value.failures == [(path, raised.value.failures[0][1])]
    (_, said), *_ = raised.value.failures
    assert reason in said
    assert f"  {path}: {said}" in str(raised.value)
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
