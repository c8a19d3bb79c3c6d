"""The cache of decoded images: hits, invalidation, its bound, its bytes per pixel."""

import os
import shutil

import numpy as np
import pytest
from awkward import (
    save_image,
)
from imagefiles import gray_file, save
from PIL import Image
from sklearn.base import clone

from pneumoclf.preprocessing import (
    DEFAULT_CACHE_LIMIT,
    ImageLoader,
    _reading,
    cache_info,
    clear_cache,
    set_cache_limit,
)

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


# ------------------------------------------------------------ bytes per pixel


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
