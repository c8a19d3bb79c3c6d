"""ImageLoader as a transformer: output, the form of X, parameters, geometry, memory."""

import pickle
import tracemalloc

import numpy as np
import pytest
from awkward import (
    save_image,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from imagefiles import flatten, gray_file, save
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError

from pneumoclf.preprocessing import (
    ImageLoader,
    ImageLoadError,
    cache_info,
    clear_cache,
)

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


# ----------------------------------------------------------- invalid parameters


@pytest.mark.parametrize(
    "params",
    [
        {"image_size": 0}, {"image_size": -3}, {"image_size": 2.5},
        {"image_size": (0, 8)}, {"image_size": (8,)}, {"image_size": (8, 8, 1)},
        {"image_size": (8.0, 8)}, {"image_size": True}, {"image_size": None},
        {"image_size": "64"}, {"image_size": [8, 8]}, {"image_size": (8, True)},
        {"resize": "bogus"}, {"resize": "PAD"}, {"resize": None},
        {"n_jobs": 0}, {"n_jobs": 1.5}, {"n_jobs": "2"},
        {"cache": "yes"}, {"cache": None}, {"cache": 1},
    ],
    ids=str,
)  # fmt: skip
@pytest.mark.parametrize("method", ["fit", "transform"])
def test_invalid_loader_parameters_are_named(tmp_path, params, method):
    path = gray_file(tmp_path, "a.png", 1)

    with pytest.raises(InvalidParameterError, match=f"'{next(iter(params))}'"):
        getattr(ImageLoader(**params), method)([path])


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
