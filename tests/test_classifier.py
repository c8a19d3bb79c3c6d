import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
import tensorflow as tf
from awkward import SIDE, SMALL_CNN
from PIL import Image
from sklearn.base import clone, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    StratifiedKFold,
    TunedThresholdClassifierCV,
    check_cv,
)
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from synthetic import blob_images

from pneumoclf import ImageLoader, PneumoniaCNNClassifier
from pneumoclf._training import run, validation

FAST = dict(epochs=3, batch_size=16, random_state=0, verbose=0)


@pytest.fixture(scope="module")
def data():
    return blob_images(80, 16, seed=0)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return PneumoniaCNNClassifier(
        epochs=8, early_stopping=False, **_no(FAST, "epochs")
    ).fit(X, y)


def _no(params, *names):
    return {k: v for k, v in params.items() if k not in names}


def fast_pipeline(**cnn_params):
    return Pipeline(
        [
            ("load", ImageLoader(image_size=16)),
            ("cnn", PneumoniaCNNClassifier(**{**FAST, **cnn_params})),
        ]
    )


# --- guards: what modern scikit-learn must see ---------------------------


def test_is_a_classifier_alone_and_in_a_pipeline():
    assert is_classifier(PneumoniaCNNClassifier())
    assert is_classifier(fast_pipeline())


def test_cv_on_a_pipeline_is_stratified(image_files):
    _, y = image_files
    assert isinstance(
        check_cv(5, y, classifier=is_classifier(fast_pipeline())), StratifiedKFold
    )


def test_clone_keeps_every_parameter():
    clf = PneumoniaCNNClassifier(
        filters=8, dropout=0.25, threshold="auto", random_state=3
    )
    assert clone(clf).get_params() == clf.get_params()
    assert clone(clf) is not clf


def test_defaults_build_the_reference_network(data):
    X = np.zeros((8, 64, 64, 1), np.float32)
    y = np.array([0, 1] * 4)
    clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0).fit(
        X, y
    )
    layers = {layer.name: layer for layer in clf.model_.layers}
    for block in (1, 2, 3):
        conv = layers[f"conv_{block}"]
        assert (conv.filters, conv.kernel_size, conv.padding) == (32, (5, 5), "valid")
        assert layers[f"pool_{block}"].pool_size == (2, 2)
    assert "conv_4" not in layers
    assert layers["flatten"].output.shape[1] == 4 * 4 * 32
    assert layers["dense"].units == 128
    assert layers["pneumonia"].units == 1
    assert clf.model_.count_params() == 832 + 25_632 + 25_632 + 65_664 + 129
    assert clf.get_params()["batch_size"] == 64


def test_pickle_round_trip_keeps_predictions(fitted, data):
    X, _ = data
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.slow
def test_same_random_state_gives_same_predictions(data):
    X, y = data
    first = PneumoniaCNNClassifier(**FAST).fit(X, y).predict_proba(X)
    second = PneumoniaCNNClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_grid_search_roc_auc_on_file_paths_gives_finite_scores(image_files):
    paths, y = image_files
    search = GridSearchCV(
        fast_pipeline(), {"cnn__filters": [4, 8]}, scoring="roc_auc", cv=2
    ).fit(paths, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_tuned_threshold_and_calibration_run_on_the_pipeline(image_files):
    paths, y = image_files
    tuned = TunedThresholdClassifierCV(fast_pipeline(), scoring="recall", cv=2).fit(
        paths, y
    )
    # The tuner reads the pipeline's probabilities and applies its own threshold.
    scores = tuned.estimator_.predict_proba(paths)[:, 1]
    np.testing.assert_array_equal(
        tuned.predict(paths), (scores >= tuned.best_threshold_).astype(int)
    )
    calibrated = CalibratedClassifierCV(fast_pipeline(), cv=2).fit(paths, y)
    np.testing.assert_array_equal(calibrated.classes_, [0, 1])
    assert calibrated.predict_proba(paths).shape == (len(paths), 2)


# --- behaviour --------------------------------------------------------------


def test_learns_the_synthetic_task(fitted):
    X, y = blob_images(60, 16, seed=7)
    assert roc_auc_score(y, fitted.predict_proba(X)[:, 1]) > 0.9


def test_column_one_is_the_network_output_for_pneumonia(fitted, data):
    X, _ = data
    proba = fitted.predict_proba(X)
    network = np.asarray(fitted.model_(X[..., np.newaxis], training=False))[:, 0]
    np.testing.assert_allclose(proba[:, 1], network, rtol=1e-5)
    np.testing.assert_array_equal(proba[:, 0], 1.0 - proba[:, 1])


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize(
    "labels",
    [np.array([0, 1]), np.array([False, True]), np.array(["NORMAL", "PNEUMONIA"])],
    ids=["int", "bool", "str"],
)
def test_user_labels_come_back_with_pneumonia_second(data, labels):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0)
    clf.fit(X, labels[y])
    np.testing.assert_array_equal(clf.classes_, labels)
    assert set(clf.predict(X)) <= set(labels)


def test_threshold_changes_predictions_without_refitting(fitted, data):
    X, _ = data
    proba = fitted.predict_proba(X)[:, 1]
    model = fitted.model_
    for threshold in (0.0, 0.3, 0.7, 0.999):  # the documented range, [0, 1)
        fitted.set_params(threshold=threshold)
        expected = fitted.classes_[(proba >= threshold).astype(int)]
        np.testing.assert_array_equal(fitted.predict(X), expected)
    fitted.set_params(threshold=0.5)
    assert fitted.model_ is model


def test_auto_threshold_is_chosen_on_validation(data):
    X, y = data
    clf = PneumoniaCNNClassifier(threshold="auto", target_recall=1.0, **FAST).fit(X, y)
    chosen = clf.chosen_threshold_
    assert clf.threshold_ == clf.decision_threshold() == chosen
    # One source of truth: threshold_ follows the parameter, both ways.
    clf.set_params(threshold=0.25)
    assert clf.threshold_ == 0.25
    scores = clf.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(clf.predict(X), (scores >= 0.25).astype(int))
    clf.set_params(threshold="auto")
    assert clf.threshold_ == chosen
    np.testing.assert_array_equal(clf.predict(X), (scores >= chosen).astype(int))


def test_auto_after_a_numeric_fit_asks_for_a_refit(fitted):
    assert fitted.chosen_threshold_ is None
    fitted.set_params(threshold="auto")
    try:
        with pytest.raises(NotFittedError, match="no threshold was chosen: refit"):
            fitted.predict(np.zeros((1, 16, 16), dtype=np.float32))
    finally:
        fitted.set_params(threshold=0.5)


@pytest.mark.slow
def test_early_stopping_stops_and_records_history(data):
    X, y = data
    rng = np.random.default_rng(0)
    clf = PneumoniaCNNClassifier(epochs=40, patience=2, **_no(FAST, "epochs")).fit(
        X, rng.permutation(y)
    )
    assert clf.n_epochs_ < 40
    assert len(clf.history_["val_auc"]) == clf.n_epochs_


@pytest.mark.usefixtures("eager")
def test_too_few_patients_train_without_validation(data):
    X, y = data
    clf = PneumoniaCNNClassifier(**FAST)
    with pytest.warns(UserWarning, match="2 patients are too few"):
        clf.fit(X, y, groups=np.arange(len(y)) // (len(y) // 2))
    assert "val_auc" not in clf.history_


@pytest.mark.usefixtures("eager")
def test_groups_reach_the_classifier_through_a_pipeline(image_files):
    paths, y = image_files
    pipe = fast_pipeline(validation_fraction=0.25)
    pipe.fit(paths, y, cnn__groups=np.arange(len(y)) // 2)
    assert "val_auc" in pipe[-1].history_


@pytest.fixture
def shared_patient_files(tmp_path):
    """40 files of 20 patients, two images each, named as in the Kermany data.

    New files for each test: the warning about them is given once per set of files.
    """
    X, y = blob_images(40, 16, seed=3)
    by_label = np.argsort(y, kind="stable")  # both images of a patient, one label
    folder = tmp_path
    paths = []
    for i, image in enumerate(X[by_label]):
        paths.append(str(folder / f"person{i // 2}_virus_{i}.png"))
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(paths[-1])
    return np.array(paths), y[by_label]


@pytest.mark.usefixtures("eager")
def test_a_fit_on_shared_patients_without_groups_says_so(shared_patient_files):
    paths, y = shared_patient_files
    with pytest.warns(UserWarning, match="40 images of this fit belong to 20 pat"):
        fast_pipeline(epochs=1).fit(paths, y)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_a_search_on_shared_patients_says_so_once(shared_patient_files):
    paths, y = shared_patient_files
    search = GridSearchCV(
        fast_pipeline(epochs=1), {"cnn__filters": [2, 4]}, cv=3, scoring="roc_auc"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(paths, y)
    said = [w for w in caught if "patients (by their file names)" in str(w.message)]
    assert len(said) == 1


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize(
    "how", ["groups given", "no validation part", "distinct patients"]
)
def test_no_shared_patient_warning_when_the_split_cannot_leak(
    shared_patient_files, image_files, how
):
    paths, y = shared_patient_files
    pipe, fit_params = fast_pipeline(epochs=1), {}
    if how == "groups given":
        fit_params = {"cnn__groups": np.arange(40) // 2}
    elif how == "no validation part":
        pipe.set_params(cnn__early_stopping=False)
    else:
        paths, y = image_files
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe.fit(paths, y, **fit_params)
    assert not [w for w in caught if "patients (by their file names)" in str(w.message)]


def test_groups_of_another_length_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        PneumoniaCNNClassifier(epochs=1).fit(X, y, groups=np.arange(len(y) - 1))


@pytest.mark.slow
def test_label_smoothing_reaches_the_loss(data):
    X, y = data
    classifier = PneumoniaCNNClassifier(
        label_smoothing=0.1, epochs=1, early_stopping=False, random_state=0
    ).fit(X, y)

    assert classifier.model_.loss.get_config()["label_smoothing"] == 0.1


# --- training further: warm_start and partial_fit -------------------------

STEADY = dict(early_stopping=False, threshold=0.5, batch_size=16, random_state=0)


def _weights(model):
    return [weight.numpy().copy() for weight in model.weights]


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_warm_start_trains_the_same_network_further(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=2, **STEADY).fit(X, y)
    network, before = clf.model_, _weights(clf.model_)
    first_losses = list(clf.history_["loss"])

    clf.set_params(warm_start=True, epochs=3).fit(X, y)

    assert clf.model_ is network
    after = _weights(network)
    assert not all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert clf.n_epochs_ == 5
    assert len(clf.history_["loss"]) == len(clf.history_["auc"]) == 5
    assert clf.history_["loss"][:2] == first_losses
    # Training on from epoch 2 starts where it stopped, not from new weights.
    assert clf.history_["loss"][2] < first_losses[0]


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_without_warm_start_each_fit_starts_afresh(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=2, **STEADY).fit(X, y)
    network = clf.model_
    clf.fit(X, y)
    assert clf.model_ is not network
    assert clf.n_epochs_ == 2


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_warm_start_chooses_the_threshold_and_calibration_again(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=2, **STEADY).fit(X, y)
    assert clf.chosen_threshold_ is None and clf.calibration_ is None

    clf.set_params(
        warm_start=True, epochs=1, threshold="auto", calibration="platt"
    ).fit(X, y)

    assert 0 <= clf.chosen_threshold_ < 1
    assert clf.calibration_ is not None
    assert clf.threshold_ == clf.chosen_threshold_


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"filters": 8}, "architecture parameters"),
        ({"n_conv_blocks": 1}, "architecture parameters"),
        ({"head": "global_average"}, "architecture parameters"),
    ],
)
def test_warm_start_refuses_a_network_its_parameters_no_longer_describe(
    data, change, message
):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, **STEADY).fit(X, y)
    with pytest.raises(ValueError, match=message):
        clf.set_params(warm_start=True, **change).fit(X, y)


@pytest.mark.usefixtures("eager")
def test_warm_start_refuses_labels_the_network_was_not_trained_on(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, warm_start=True, **STEADY).fit(X, y)
    with pytest.raises(ValueError, match=r"labels \['NORMAL', 'PNEUMONIA'\]"):
        clf.fit(X, np.where(y == 1, "PNEUMONIA", "NORMAL"))


@pytest.mark.usefixtures("eager")
def test_warm_start_refuses_images_of_another_size(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, warm_start=True, **STEADY).fit(X, y)
    with pytest.raises(ValueError, match=r"12 features, but .* expecting 16"):
        clf.fit(X[:, :12, :12], y)
    with pytest.raises(ValueError, match="16x16"):
        clf.fit(X[:, :, :12], y)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_partial_fit_is_one_epoch_per_call_and_repeatable(data):
    X, y = data
    first, second = (PneumoniaCNNClassifier(**STEADY) for _ in range(2))
    for clf in (first, second):
        clf.partial_fit(X[:40], y[:40])
        assert clf.n_epochs_ == 1 and len(clf.history_["loss"]) == 1
        one_epoch = clf.predict_proba(X[40:])
        # A batch of one class trains on; the classes were set by the first call.
        clf.partial_fit(X[40:][y[40:] == 1], y[40:][y[40:] == 1])
    assert first.n_epochs_ == 2 and list(first.history_) == ["auc", "loss"]
    assert not np.allclose(first.predict_proba(X[40:]), one_epoch)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.training_prevalence_ == 0.5 and first.calibration_ is None


@pytest.mark.usefixtures("eager")
def test_partial_fit_takes_the_classes_on_the_first_call(data):
    X, y = data
    normal = y == 0
    labels = np.where(y == 1, "PNEUMONIA", "NORMAL")
    clf = PneumoniaCNNClassifier(**STEADY)
    with pytest.raises(ValueError, match="pass classes="):
        clf.partial_fit(X[normal], labels[normal])
    clf.partial_fit(X[normal], labels[normal], classes=["PNEUMONIA", "NORMAL"])
    assert clf.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    with pytest.raises(ValueError, match=r"labels \['VIRUS'\]"):
        clf.partial_fit(X[:2], np.array(["NORMAL", "VIRUS"]))
    with pytest.raises(ValueError, match="differs from the classes"):
        clf.partial_fit(X[:2], labels[:2], classes=["NORMAL", "SICK"])


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"threshold": "auto"}, "threshold='auto'"),
        ({"calibration": "platt"}, "calibration='platt'"),
    ],
)
def test_partial_fit_refuses_what_needs_a_validation_part(data, settings, named):
    X, y = data
    clf = PneumoniaCNNClassifier(**{**STEADY, **settings})
    with pytest.raises(ValueError, match=f"partial_fit .*{named}"):
        clf.partial_fit(X, y)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_fit_after_partial_fit_joins_the_histories(data, tmp_path):
    from pneumoclf.persistence import load_model, save_model

    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, **STEADY).partial_fit(X, y)
    clf.set_params(warm_start=True, early_stopping=True).fit(X, y)
    assert clf.n_epochs_ == 2
    assert np.isnan(clf.history_["val_loss"][0])
    assert np.isfinite(clf.history_["val_loss"][1])
    save_model(clf, tmp_path / "model.pneumoclf")
    loaded = load_model(tmp_path / "model.pneumoclf")
    assert loaded.warm_start is True and loaded.n_epochs_ == 2
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.usefixtures("eager")
def test_three_and_two_dimensional_inputs(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0)
    assert clf.fit(X, y).image_shape_ == (16, 16, 1)
    table = X.reshape(len(X), -1)[:, :10]
    assert clf.fit(table, y).image_shape_ == (1, 10, 1)
    assert clf.predict_proba(table).shape == (len(X), 2)


@pytest.mark.usefixtures("eager")
def test_sample_weight_is_not_modified(data):
    X, y = data
    weights = np.ones(len(y))
    PneumoniaCNNClassifier(class_weight="balanced", epochs=1, random_state=0).fit(
        X, y, sample_weight=weights
    )
    np.testing.assert_array_equal(weights, 1.0)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_sample_weight_reaches_the_loss(data):
    X, y = data
    weights = np.where(y == 0, 1.0, 0.0)
    clf = PneumoniaCNNClassifier(early_stopping=False, **FAST)
    # Unweighted, these few epochs leave every score above 0.5; with every
    # pneumonia image weighted 0, only the normal ones pull, all downwards.
    assert clf.fit(X, y).predict_proba(X)[:, 1].min() > 0.5
    assert clf.fit(X, y, sample_weight=weights).predict_proba(X)[:, 1].max() < 0.5


# ----------------------------------- shapes, dtypes and labels of hostile input


@pytest.fixture(scope="module")
def images(held_out_gray):
    return (held_out_gray / 255).astype(np.float32)


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float64),
        lambda X: X.astype(object),
        lambda X: X.tolist(),
        lambda X: X[..., np.newaxis],
        lambda X: np.asfortranarray(X),
        lambda X: np.swapaxes(np.swapaxes(X, 1, 2).copy(), 1, 2),
    ],
    ids=["float64", "object", "nested-lists", "4-d", "fortran", "strided-view"],
)
def test_any_array_like_of_the_images_predicts_the_same(
    awkward_classifier, held_out_images, convert
):
    expected = awkward_classifier.predict_proba(held_out_images)

    np.testing.assert_array_equal(
        awkward_classifier.predict_proba(convert(held_out_images)), expected
    )


@pytest.mark.parametrize("dtype", [bool, np.int64, np.uint8, np.float16])
def test_binary_images_of_any_dtype_predict_the_same(
    awkward_classifier, held_out_images, dtype
):
    binary = held_out_images > 0.45

    proba = awkward_classifier.predict_proba(binary.astype(dtype))

    np.testing.assert_array_equal(
        proba, awkward_classifier.predict_proba(binary.astype(np.float32))
    )


def test_a_single_image_in_a_batch_of_one_predicts_like_in_the_batch(
    awkward_classifier, held_out_images
):
    alone = awkward_classifier.predict_proba(held_out_images[3:4])
    in_batch = awkward_classifier.predict_proba(held_out_images)[3:4]
    np.testing.assert_allclose(alone, in_batch, atol=1e-6)


@pytest.mark.parametrize("make_X", [lambda X: X * 255, lambda X: X - 2.0])
def test_images_outside_the_unit_range_warn_at_predict(
    awkward_classifier, held_out_images, make_X
):
    with pytest.warns(UserWarning, match=r"expects images scaled to \[0, 1\]"):
        awkward_classifier.predict_proba(make_X(held_out_images))


def test_uint8_pixels_warn_at_predict_with_the_range_found(
    awkward_classifier, held_out_gray
):
    with pytest.warns(UserWarning, match=r"values in \[\d+, \d+\].*divide 8-bit"):
        awkward_classifier.predict(held_out_gray)


def test_images_in_the_unit_range_do_not_warn(awkward_classifier, held_out_images):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probabilities = awkward_classifier.predict_proba(held_out_images)

    assert [str(w.message) for w in caught if w.category is UserWarning] == []
    assert probabilities.shape == (len(held_out_images), 2)


@pytest.mark.parametrize(
    ("make_X", "error", "message"),
    [
        (lambda X: X[0], ValueError, r"is one image.*X\[np\.newaxis\]"),
        (lambda X: X[0, ..., np.newaxis], ValueError, r"is one image"),
        (lambda X: np.repeat(X[..., None], 3, axis=3), ValueError,
         "Images of 3 channels do not match the 1-channel"),
        (lambda X: X[:, :8, :8], ValueError, r"8x8x1 .* 16x16x1"),
        (lambda X: X[:, :, :, None, None], ValueError, "5 dimensions"),
        (lambda X: X[:0], ValueError, "0 sample"),
        (lambda X: X[:, 0, 0], ValueError, "Expected 2D array"),
        (lambda X: sp.csr_matrix(X.reshape(len(X), -1)), TypeError,
         "dense data is required"),
        (lambda X: np.where(X > 0.9, np.nan, X), ValueError, "NaN"),
        (lambda X: np.where(X > 0.9, -np.inf, X), ValueError, "infinity"),
        (lambda X: np.full(X.shape, "bright", dtype=object), ValueError,
         "could not convert string to float"),
        (lambda X: X.astype(complex), ValueError, "Complex data not supported"),
    ],
    ids=["2-d-image", "3-d-image", "channels", "size", "5-d", "empty", "1-d",
         "sparse", "nan", "inf", "strings", "complex"],
)  # fmt: skip
def test_wrong_input_at_predict_says_what_is_wrong(
    awkward_classifier, held_out_images, make_X, error, message
):
    with pytest.raises(error, match=message):
        awkward_classifier.predict_proba(make_X(held_out_images))


@pytest.mark.usefixtures("eager")
def test_other_table_width_than_in_fit_is_refused(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False).fit(X[:, 0, :], y)
    with pytest.raises(ValueError, match=r"X has 8 features, but .* expecting 16"):
        clf.predict(X[:, 0, :8])


def test_an_empty_list_of_paths_is_refused_by_the_pipeline(awkward_pipeline):
    with pytest.raises(ValueError, match="at least one image path"):
        awkward_pipeline.predict([])


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_threshold"])
def test_nothing_predicts_before_fit(held_out_images, method):
    clf = PneumoniaCNNClassifier(threshold="auto")
    arguments = () if method == "decision_threshold" else (held_out_images,)

    with pytest.raises(NotFittedError):
        getattr(clf, method)(*arguments)


def test_an_unfitted_pipeline_refuses_paths(held_out_files):
    unfitted = Pipeline([("load", ImageLoader()), ("cnn", PneumoniaCNNClassifier())])

    with pytest.raises(NotFittedError):
        unfitted.predict_proba(held_out_files[0])


def labels(y, negative, positive):
    return np.where(np.asarray(y) == 1, positive, negative)


Y = np.array([0, 1] * 6)
X12 = np.random.default_rng(0).random((12, 8, 8)).astype(np.float32)


def _with(values, position, value):
    values = np.array(values, dtype=object)
    values[position] = value
    return values


@pytest.mark.parametrize(
    ("X", "y", "error", "message"),
    [
        (X12, labels(Y, "NORMAL ", " PNEUMONIA"), ValueError,
         r"greater one, 'NORMAL ', would be taken as pneumonia"),
        (X12, labels(Y, "normal", "PNEUMONIA"), ValueError,
         r"greater one, 'normal', would be taken as pneumonia"),
        (X12, labels(Y, "NORMAL", "BACTERIA"), ValueError,
         r"'BACTERIA' and 'NORMAL': .* greater one, 'NORMAL', would be taken"),
        (X12, labels(Y, "Normal", "Abnormal"), ValueError,
         r"greater one, 'Normal', would be taken as pneumonia"),
        (X12, labels(Y, "VIRAL", "PNEUMONIA"), ValueError,
         r"'PNEUMONIA' and 'VIRAL': .* greater one, 'VIRAL', would be taken"),
        (X12, _with(Y, 3, None), ValueError, "missing labels .* at positions 3"),
        (X12, np.where(Y == 1, 1.0, np.nan), ValueError,
         "missing labels .* at positions 0, 2, 4"),
        (X12, _with(Y, 1, "1"), ValueError, "mixes text labels such as '1'"),
        (X12, np.column_stack([Y, 1 - Y]), ValueError,
         r"1d array, got an array of shape \(12, 2\)"),
        (X12, Y[:-1], ValueError, "inconsistent numbers of samples"),
        (X12[:0], Y[:0], ValueError, "y is empty"),
        (X12[:1], Y[1:2], ValueError, r"one class only \(\[1\]\)"),
        (X12, np.arange(12) % 3, ValueError, "3 classes"),
        (np.zeros((12, 8, 0)), Y, ValueError,
         r"at least one row, one column and one channel; got X of shape \(12, 8, 0\)"),
        (sp.csr_matrix(X12.reshape(12, -1)), Y, TypeError, "dense data is required"),
        (np.where(X12 > 0.9, np.nan, X12), Y, ValueError, "NaN"),
        (np.where(X12 > 0.9, np.inf, X12), Y, ValueError, "infinity"),
        (X12[:, :, :, None, None], Y, ValueError, "5 dimensions"),
        (X12, np.linspace(0, 1, 12), ValueError, "Unknown label type"),
    ],
    ids=["whitespace-labels", "case-labels", "bacteria-labels", "abnormal-labels",
         "pneumonia-first-labels", "none-label", "nan-labels",
         "mixed-labels", "two-column-y", "lengths", "empty", "one-sample",
         "three-classes", "zero-width", "sparse", "nan-pixels", "inf-pixels",
         "5-d", "continuous-y"],
)  # fmt: skip
def test_wrong_training_input_says_what_is_wrong(X, y, error, message):
    with pytest.raises(error, match=message):
        PneumoniaCNNClassifier(**SMALL_CNN).fit(X, y)


@pytest.fixture(scope="module")
def fitted_on_uint8_and_a_column_y(held_out_gray):
    y = np.array([0, 1] * 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = PneumoniaCNNClassifier(**SMALL_CNN).fit(
            held_out_gray, labels(y, "NORMAL", "PNEUMONIA").reshape(-1, 1)
        )
    return clf, caught


def test_uint8_training_images_warn(fitted_on_uint8_and_a_column_y):
    _, caught = fitted_on_uint8_and_a_column_y
    messages = [str(w.message) for w in caught if w.category is UserWarning]

    assert any("values in [0, 255]" in message for message in messages)


def test_a_column_y_warns_and_is_ravelled(
    fitted_on_uint8_and_a_column_y, held_out_gray
):
    clf, caught = fitted_on_uint8_and_a_column_y

    assert any(issubclass(w.category, DataConversionWarning) for w in caught)
    assert clf.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    with pytest.warns(UserWarning):
        assert clf.predict(held_out_gray).shape == (len(held_out_gray),)


def test_a_dataframe_is_a_table_whose_column_names_are_checked(held_out_images):
    table = pd.DataFrame(
        held_out_images[:, 0, :], columns=[f"px{i}" for i in range(SIDE)]
    )
    y = np.array([0, 1] * 4)
    # No input check: its warning is not what this test watches for.
    clf = PneumoniaCNNClassifier(**SMALL_CNN, input_check=None).fit(table, y)

    assert clf.image_shape_ == (1, SIDE, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        from_frame = clf.predict_proba(table)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = clf.predict_proba(table.to_numpy())
    np.testing.assert_array_equal(from_frame, from_array)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict_proba(table[table.columns[::-1]])


# ----------------------------------------------------------- invalid parameters


@pytest.mark.parametrize(
    "params",
    [
        {"n_conv_blocks": 0}, {"kernel_size": 0}, {"dense_units": 0},
        {"batch_norm": "yes"}, {"lr_schedule": "cosine"}, {"batch_size": 0},
        {"epochs": 0}, {"early_stopping": "no"}, {"validation_fraction": 1.0},
        {"patience": 0}, {"class_weight": "auto"}, {"rotation": 0.6},
        {"zoom": 1.0}, {"shift": -0.1}, {"contrast": 1.5}, {"blur": -0.5},
        {"target_recall": 0.0},
        {"callbacks": "early"}, {"callbacks": [object()]},
        {"class_weight": {0: -1.0, 1: 1.0}}, {"class_weight": {0: 0.0, 1: 0.0}},
        {"class_weight": {0: np.nan, 1: 1.0}}, {"class_weight": {0: "1", 1: 1.0}},
        {"random_state": "seed"}, {"verbose": -1}, {"threshold": np.nan},
        {"filters": 0}, {"dropout": 1.0}, {"padding": "full"},
        {"optimizer": "adagrad"}, {"threshold": 1.5}, {"threshold": 1.0},
        {"label_smoothing": 1.0}, {"threshold": "best"}, {"learning_rate": -1.0},
        {"validation_fraction": 0.0},
    ],
    ids=lambda params: re.sub(r" at 0x[0-9a-f]+", "", str(params)),  # same in workers
)  # fmt: skip
def test_invalid_classifier_parameters_are_named(params):
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(params))}'"):
        PneumoniaCNNClassifier(**params).fit(X12, Y)


def test_valid_padding_on_too_small_images_names_the_parameters():
    clf = PneumoniaCNNClassifier(padding="valid", n_conv_blocks=3, epochs=1)

    with pytest.raises(ValueError, match=r"padding='valid' leaves no pixel of 8x8"):
        clf.fit(X12, Y)


def test_class_weight_for_labels_not_in_y_is_named():
    clf = PneumoniaCNNClassifier(class_weight={0: 1.0, 2: 5.0}, epochs=1)

    with pytest.raises(ValueError, match=r"classes, \[1\], are not in class_weight"):
        clf.fit(X12, Y)


# -------------------------------------------------------- calibration, prevalence


@pytest.fixture(scope="module")
def calibrated_classifier(data):
    X, y = data
    return PneumoniaCNNClassifier(
        calibration="platt", threshold="auto", validation_fraction=0.25, **FAST
    ).fit(X, y)


def test_calibrated_probabilities_are_the_fitted_map_of_the_network(
    calibrated_classifier, data
):
    from scipy.special import expit, logit

    X, _ = data
    clf = calibrated_classifier
    slope, intercept = clf.calibration_
    assert slope > 0
    assert clf.training_prevalence_ == pytest.approx(0.5, abs=0.1)
    network = np.asarray(clf.model_(X[..., np.newaxis], training=False))[:, 0]
    network = np.clip(network.astype(np.float64), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(
        clf.predict_proba(X)[:, 1], expit(slope * logit(network) + intercept), rtol=1e-5
    )


def test_a_deployment_prevalence_moves_probabilities_and_threshold_together(
    calibrated_classifier, data
):
    X, _ = data
    clf = calibrated_classifier
    before_proba, before_labels = clf.predict_proba(X)[:, 1], clf.predict(X)
    before_threshold = clf.threshold_
    clf.set_params(prevalence=0.1)
    try:
        after = clf.predict_proba(X)[:, 1]
        # Rarer pneumonia: every probability drops, the order stays.
        assert np.all(after < before_proba)
        assert np.array_equal(np.argsort(after), np.argsort(before_proba))
        assert clf.threshold_ < before_threshold
        # The automatic threshold keeps its recall and specificity.
        np.testing.assert_array_equal(clf.predict(X), before_labels)
    finally:
        clf.set_params(prevalence=None)
    np.testing.assert_array_equal(clf.predict_proba(X)[:, 1], before_proba)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"prevalence": float("nan")}, "'prevalence'"),
        ({"prevalence": float("inf")}, "'prevalence'"),
        ({"prevalence": 0}, "'prevalence'"),
        ({"prevalence": 1.0}, "'prevalence'"),
        ({"threshold": float("nan")}, "'threshold'"),
        ({"threshold": 1.5}, "'threshold'"),
        ({"threshold": -0.1}, "'threshold'"),
    ],
)
def test_values_set_after_fitting_are_checked_where_predictions_use_them(
    calibrated_classifier, data, params, named
):
    X, _ = data
    clf = calibrated_classifier
    saved = {name: clf.get_params()[name] for name in params}
    clf.set_params(**params)
    try:
        for predict in (clf.predict_proba, clf.predict):
            with pytest.raises(InvalidParameterError, match=named):
                predict(X[:2])
        with pytest.raises(InvalidParameterError, match=named):
            clf.decision_threshold()
    finally:
        clf.set_params(**saved)
    assert clf.predict(X[:2]).shape == (2,)


def test_prevalence_needs_calibration(data, fitted):
    X, y = data
    with pytest.raises(ValueError, match=r"prevalence=0\.2 needs calibrated"):
        PneumoniaCNNClassifier(prevalence=0.2, **FAST).fit(X, y)
    fitted.set_params(prevalence=0.2)
    try:
        with pytest.raises(ValueError, match=r"prevalence=0\.2 needs calibrated"):
            fitted.predict_proba(X)
    finally:
        fitted.set_params(prevalence=None)


def test_calibration_without_a_validation_part_says_so(data):
    X, y = data
    clf = PneumoniaCNNClassifier(calibration="platt", **FAST)
    with pytest.warns(UserWarning, match="No validation part to calibrate on"):
        clf.fit(X[:10], y[:10])
    assert clf.calibration_ is None


@pytest.mark.slow
def test_early_stopping_on_the_loss_keeps_a_trained_network(data):
    # On the AUC, which saturates at once on this easy task, the first epochs win
    # ties and the probabilities stay near 0.5; on the loss they sharpen.
    X, y = data
    spreads = {}
    for monitor in ("auc", "loss"):
        clf = PneumoniaCNNClassifier(
            monitor=monitor, epochs=30, patience=3, **_no(FAST, "epochs")
        ).fit(X, y)
        spreads[monitor] = np.ptp(clf.predict_proba(X)[:, 1])
    assert spreads["loss"] > spreads["auc"]
    assert spreads["loss"] > 0.5


# ------------------------------------------------------------- broken training runs


def test_a_diverging_training_is_refused_not_saved(data):
    X, y = data
    clf = PneumoniaCNNClassifier(
        learning_rate=1e6, early_stopping=False, threshold=0.5, **FAST
    )
    with pytest.raises(ValueError, match=r"Training diverged.*learning_rate"):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_a_network_whose_output_is_nan_refuses_to_predict(awkward_classifier, data):
    import copy

    X, _ = data
    broken = copy.copy(awkward_classifier)
    broken.model_ = keras_clone_with_nan_bias(awkward_classifier.model_)
    with pytest.raises(ValueError, match=r"output is NaN or infinite for \d+ of"):
        broken.predict(X[:4])


def keras_clone_with_nan_bias(model):
    import keras

    clone_ = keras.models.clone_model(model)
    weights = clone_.get_weights()
    weights[-1] = np.full_like(weights[-1], np.nan)
    clone_.set_weights(weights)
    return clone_


def test_a_network_that_learned_nothing_is_named_in_a_warning(data, monkeypatch):
    from pneumoclf._training import run

    X, y = data

    def same_for_all(model, images, batch_size):
        return np.full(len(images), 0.5004, dtype=np.float32)

    monkeypatch.setattr(run, "network_scores", same_for_all)
    clf = PneumoniaCNNClassifier(early_stopping=False, **FAST)
    with pytest.warns(UserWarning, match=r"same pneumonia probability \(0\.5004\)"):
        clf.fit(X, y)


@pytest.mark.slow
def test_identical_training_images_are_no_sign_of_a_failed_training(recwarn):
    X = np.zeros((8, 16, 16), np.float32)
    PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0).fit(
        X, np.array([0, 1] * 4)
    )
    assert not [w for w in recwarn if "same pneumonia probability" in str(w.message)]


# --- scikit-learn's global configuration ---------------------------------


@pytest.fixture(scope="module")
def default_config_run(image_files):
    return _fit_and_predict(image_files)


def _fit_and_predict(image_files):
    paths, y = image_files
    pipeline = fast_pipeline(threshold="auto", calibration="platt")
    pipeline.fit(paths, y)  # with a validation part, early stopping and a threshold
    return (
        pipeline.predict_proba(paths),
        pipeline.predict(paths),
        pipeline.score(paths, y),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        {"transform_output": "pandas"},
        {"assume_finite": True},
        {"enable_metadata_routing": True},
    ],
    ids=lambda config: next(iter(config)),
)
def test_global_configuration_changes_nothing(image_files, default_config_run, config):
    with sklearn.config_context(**config):
        probabilities, labels, score = _fit_and_predict(image_files)

    np.testing.assert_array_equal(probabilities, default_config_run[0])
    np.testing.assert_array_equal(labels, default_config_run[1])
    assert score == default_config_run[2]


@pytest.mark.slow
def test_patient_groups_reach_the_inner_split_in_every_search_through_routing(
    image_files, monkeypatch
):
    paths, y = image_files
    groups = np.arange(len(y)) // 2
    seen = []
    split = validation.validation_split

    def recording_split(classifier, y_encoded, groups, *args):
        seen.append(groups)
        return split(classifier, y_encoded, groups, *args)

    monkeypatch.setattr(run, "validation_split", recording_split)
    folds = GroupKFold(2)
    tf.config.run_functions_eagerly(True)  # eight small fits
    try:
        with sklearn.config_context(enable_metadata_routing=True):
            pipe = fast_pipeline(threshold="auto")
            pipe.named_steps["cnn"].set_fit_request(groups=True, sample_weight=False)
            GridSearchCV(pipe, {"cnn__filters": [4]}, cv=folds).fit(
                paths, y, groups=groups
            )
            TunedThresholdClassifierCV(pipe, cv=folds).fit(paths, y, groups=groups)
            CalibratedClassifierCV(pipe, cv=folds).fit(paths, y, groups=groups)
    finally:
        tf.config.run_functions_eagerly(False)

    assert len(seen) == 8
    for fold_groups in seen:
        assert fold_groups is not None and set(fold_groups) <= set(groups)
