"""The input gate: real chest X-rays pass; what is not one is refused, saying why."""

import warnings

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from sklearn.pipeline import Pipeline
from synthetic import save_dicom

from pneumoclf import ImageLoader, PneumoniaCNNClassifier, load_sample, patient_split
from pneumoclf.exceptions import InputCheckWarning
from pneumoclf.validity import (
    PASSED,
    colour_reasons,
    dicom_reasons,
    feature_reasons,
    fit_input_reference,
    input_check_results,
    statistics_reasons,
)

SIDE = 32


@pytest.fixture(scope="module")
def sample_split():
    data = load_sample()
    train, _, test = patient_split(
        data.paths, data.target, groups=data.groups, sizes=(0.7, 0.0, 0.3),
        random_state=0,
    )  # fmt: skip
    return data, train, test


@pytest.fixture(scope="module")
def gate(sample_split):
    """A small network fitted on real X-rays of the bundled sample, with its gate."""
    data, train, _ = sample_split
    cnn = PneumoniaCNNClassifier(
        n_conv_blocks=2, filters=8, dense_units=16, epochs=8, batch_size=32,
        head="global_average", validation_fraction=0.2, random_state=0,
    )  # fmt: skip
    pipe = Pipeline([("load", ImageLoader(image_size=SIDE)), ("cnn", cnn)])
    return pipe.fit(
        data.paths[train], data.target[train], cnn__groups=data.groups[train]
    )


def _smooth(rng, sigma):
    return gaussian_filter(rng.random((SIDE, SIDE)), sigma)


def ct_slices(rng):
    """A bright textured disc on black: the look of an axial CT slice."""
    rows, columns = np.mgrid[:SIDE, :SIDE]
    disc = (rows - 15.5) ** 2 + (columns - 15.5) ** 2 < 15**2
    return [disc * np.clip(0.35 + 0.5 * _smooth(rng, 1.5), 0, 1) for _ in range(20)]


def text_pages(rng):
    page = np.full((SIDE, SIDE), 0.9)
    page[3::5, 3:29] = 0.1
    return [np.clip(page + 0.05 * rng.random((SIDE, SIDE)), 0, 1) for _ in range(20)]


def noise(rng):
    return [rng.random((SIDE, SIDE)) for _ in range(20)]


def blank_frames(rng):
    return [np.full((SIDE, SIDE), level) for level in (0.0, 0.5, 1.0)]


def a_hand(rng):
    """A bright shape on a black field: another body part."""
    image = np.zeros((SIDE, SIDE))
    image[4:28, 10:22] = 0.8
    return [image]


@pytest.mark.parametrize(
    "make_images",
    [ct_slices, text_pages, noise, blank_frames, a_hand],
)
def test_what_is_no_chest_x_ray_is_refused(gate, make_images):
    images = np.asarray(make_images(np.random.default_rng(0)), dtype=np.float32)

    results = gate[-1].check_inputs(images)

    assert np.mean(results != PASSED) >= 0.9, list(results)


def test_photographs_in_colour_are_refused(gate, tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for number in range(10):
        # Smooth blotches of three colours, as a photograph has.
        channels = [np.clip(_smooth(rng, 4) * 4 - 1.5, 0, 1) for _ in range(3)]
        picture = (np.stack(channels, axis=-1) * 255).astype(np.uint8)
        paths.append(tmp_path / f"photo{number}.jpeg")
        Image.fromarray(picture).resize((128, 128)).save(paths[-1])

    results = gate[-1].check_inputs(gate[0].transform(paths))

    assert all(result.startswith("colour image") for result in results), results


def test_chest_x_rays_of_unseen_patients_pass(gate, sample_split):
    data, _, test = sample_split

    results = gate[-1].check_inputs(gate[0].transform(data.paths[test]))

    assert np.mean(results == PASSED) >= 0.95, [r for r in results if r != PASSED]


def test_predict_names_the_refused_files_and_still_answers(
    gate, sample_split, tmp_path
):
    data, _, test = sample_split
    photo = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    colour = tmp_path / "holiday.png"
    Image.fromarray(photo).save(colour)
    paths = [*data.paths[test][:3], str(colour)]

    with pytest.warns(
        InputCheckWarning, match=r"of 4 images did not pass .*holiday\.png"
    ):
        probabilities = gate.predict_proba(paths)

    assert probabilities.shape == (4, 2)
    results = gate[-1].check_inputs(gate[0].transform(paths))
    assert results[3].startswith("colour image")


def test_an_x_ray_saved_in_rgb_is_no_colour_image(sample_split, tmp_path):
    data, _, test = sample_split
    rgb = tmp_path / "x_ray_rgb.png"
    Image.open(data.paths[test][0]).convert("RGB").save(rgb)
    colourful = tmp_path / "tinted.png"
    tint = np.asarray(Image.open(rgb), np.float32) * [1.0, 0.8, 0.6]
    Image.fromarray(tint.astype(np.uint8)).save(colourful)

    files = [rgb, colourful, data.paths[test][0]]
    as_rgb, tinted, as_saved = colour_reasons(files)

    assert as_rgb is None and as_saved is None
    assert tinted.startswith("colour image")
    assert colour_reasons(files, n_threads=1) == [as_rgb, tinted, as_saved]
    assert colour_reasons(files, cache=False) == [as_rgb, tinted, as_saved]


def test_real_x_rays_raise_no_input_warning(gate, sample_split):
    data, _, test = sample_split
    passing = data.paths[test][
        gate[-1].check_inputs(gate[0].transform(data.paths[test])) == PASSED
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputCheckWarning)
        assert gate.predict(passing).shape == (len(passing),)


@pytest.mark.parametrize(
    ("elements", "reason"),
    [
        ({"BodyPartExamined": "HAND"}, "DICOM BodyPartExamined 'HAND': not the chest"),
        ({"ViewPosition": "LL"}, "DICOM ViewPosition 'LL': not a frontal view"),
        ({"Modality": "MG"}, "DICOM Modality 'MG': not a plain radiograph"),
    ],
)
def test_dicom_attributes_that_say_it_is_no_frontal_chest_film_refuse_it(
    gate, sample_split, tmp_path, elements, reason
):
    pytest.importorskip("pydicom")
    data, _, test = sample_split
    pixels = np.asarray(Image.open(data.paths[test][0]).convert("L"), np.uint16) * 16
    good = tmp_path / "chest.dcm"
    save_dicom(good, pixels, BodyPartExamined="CHEST", ViewPosition="PA")
    odd = tmp_path / "other.dcm"
    save_dicom(odd, pixels, **{"BodyPartExamined": "CHEST", **elements})

    assert dicom_reasons([good, odd, data.paths[test][0]]) == [None, reason, None]
    results = gate[-1].check_inputs(gate[0].transform([good, odd]))
    assert results[1] == reason


def test_without_a_feature_reference_the_pixel_checks_remain(sample_split):
    data, train, _ = sample_split
    some = train[::3]
    X = ImageLoader(image_size=16).transform(data.paths[some])
    clf = PneumoniaCNNClassifier(
        n_conv_blocks=1, filters=4, dense_units=4, epochs=1, input_check=None,
        random_state=0,
    ).fit(X, data.target[some])  # fmt: skip

    assert clf.input_reference_ is None
    blank = np.zeros((1, 16, 16, 1), np.float32)
    assert clf.check_inputs(blank)[0].startswith("nearly uniform image")
    assert clf.check_inputs(X[:5]).tolist() == [PASSED] * 5


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.full((8, 8), 0.4), "nearly uniform image"),
        (np.where(np.arange(64).reshape(8, 8) < 40, 1.0, 0.3), "mostly white image"),
        (np.where(np.arange(64).reshape(8, 8) < 48, 0.0, 0.7), "mostly black image"),
        (np.linspace(0, 1, 64).reshape(8, 8), None),
    ],
)
def test_pixel_statistics(image, reason):
    (said,) = statistics_reasons(image[np.newaxis])
    assert said == reason if reason is None else said.startswith(reason)


def test_the_feature_threshold_keeps_the_share_asked_for():
    rng = np.random.default_rng(0)
    covariance = np.diag([4.0, 1.0, 0.25])
    training = rng.multivariate_normal(np.zeros(3), covariance, size=4000)
    validation = rng.multivariate_normal(np.zeros(3), covariance, size=4000)
    new = rng.multivariate_normal(np.zeros(3), covariance, size=4000)

    reference = fit_input_reference(training, validation, keep=0.9)

    refused = np.mean(
        [reason is not None for reason in feature_reasons(reference, new)]
    )
    assert 0.08 <= refused <= 0.12
    far = np.array([[0.0, 0.0, 3.0]])  # six of its own standard deviations
    assert feature_reasons(reference, far)[0].startswith("unlike the training X-rays")


def test_a_few_validation_images_do_not_make_the_threshold_tight():
    rng = np.random.default_rng(1)
    training = rng.normal(size=(500, 8))
    reference = fit_input_reference(training, rng.normal(size=(6, 8)), keep=0.995)

    refused = feature_reasons(reference, rng.normal(size=(2000, 8)))
    assert np.mean([reason is not None for reason in refused]) <= 0.02


def test_the_first_reason_of_any_check_wins():
    results = input_check_results(
        ["a", None, None], [None, "b", None], ["c", "d", None]
    )
    assert results.tolist() == ["a", "b", PASSED]


def test_a_dicom_whose_rescale_blanks_it_is_refused(gate, sample_split, tmp_path):
    pytest.importorskip("pydicom")
    data, _, test = sample_split
    pixels = np.asarray(Image.open(data.paths[test][0]).convert("L"), np.uint16) * 16
    flat = tmp_path / "slope0.dcm"
    save_dicom(flat, pixels, RescaleSlope=0, RescaleIntercept=0)

    (result,) = gate[-1].check_inputs(gate[0].transform([flat]))

    assert result.startswith("nearly uniform image")


def test_too_few_images_per_feature_fit_no_feature_test(sample_split):
    data, train, _ = sample_split
    some = train[::5]  # 28 images for 8 features: fewer than 4 a feature
    X = ImageLoader(image_size=16).transform(data.paths[some])
    clf = PneumoniaCNNClassifier(
        n_conv_blocks=1, filters=4, dense_units=8, epochs=1, random_state=0
    ).fit(X, data.target[some])

    assert len(some) < 4 * 8 and clf.input_reference_ is None
    assert clf.check_inputs(np.zeros((1, 16, 16, 1), np.float32))[0] != PASSED
