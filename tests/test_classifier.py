import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    TunedThresholdClassifierCV,
    check_cv,
)
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from synthetic import blob_images

from pneumoclf import ImageLoader, PneumoniaCNNClassifier

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


def test_same_random_state_gives_same_predictions(data):
    X, y = data
    first = PneumoniaCNNClassifier(**FAST).fit(X, y).predict_proba(X)
    second = PneumoniaCNNClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_grid_search_roc_auc_on_file_paths_gives_finite_scores(image_files):
    paths, y = image_files
    search = GridSearchCV(
        fast_pipeline(), {"cnn__filters": [4, 8]}, scoring="roc_auc", cv=2
    ).fit(paths, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_tuned_threshold_and_calibration_run_on_the_pipeline(image_files):
    paths, y = image_files
    tuned = TunedThresholdClassifierCV(fast_pipeline(), scoring="recall", cv=2).fit(
        paths, y
    )
    assert 0.0 <= tuned.best_threshold_ <= 1.0
    calibrated = CalibratedClassifierCV(fast_pipeline(), cv=2).fit(paths, y)
    proba = calibrated.predict_proba(paths)
    assert proba.shape == (len(paths), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


# --- behaviour --------------------------------------------------------------


def test_learns_the_synthetic_task(fitted):
    X, y = blob_images(60, 16, seed=7)
    assert roc_auc_score(y, fitted.predict_proba(X)[:, 1]) > 0.9


def test_probabilities_are_two_columns_summing_to_one(fitted, data):
    X, _ = data
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.min() >= 0.0 and proba.max() <= 1.0


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
    for threshold in (0.0, 0.3, 0.7, 1.0):
        fitted.set_params(threshold=threshold)
        expected = fitted.classes_[(proba >= threshold).astype(int)]
        np.testing.assert_array_equal(fitted.predict(X), expected)
    fitted.set_params(threshold=0.5)
    assert fitted.model_ is model


def test_auto_threshold_is_chosen_on_validation(data):
    X, y = data
    clf = PneumoniaCNNClassifier(threshold="auto", target_recall=1.0, **FAST).fit(X, y)
    assert 0.0 <= clf.threshold_ <= 1.0
    assert clf.decision_threshold() == clf.threshold_


def test_early_stopping_stops_and_records_history(data):
    X, y = data
    rng = np.random.default_rng(0)
    clf = PneumoniaCNNClassifier(epochs=40, patience=2, **_no(FAST, "epochs")).fit(
        X, rng.permutation(y)
    )
    assert clf.n_epochs_ < 40
    assert len(clf.history_["val_auc"]) == clf.n_epochs_


def test_too_few_patients_train_without_validation(data):
    X, y = data
    clf = PneumoniaCNNClassifier(**FAST)
    with pytest.warns(UserWarning, match="2 patients are too few"):
        clf.fit(X, y, groups=np.arange(len(y)) // (len(y) // 2))
    assert "val_auc" not in clf.history_


def test_groups_reach_the_classifier_through_a_pipeline(image_files):
    paths, y = image_files
    pipe = fast_pipeline(validation_fraction=0.25)
    pipe.fit(paths, y, cnn__groups=np.arange(len(y)) // 2)
    assert "val_auc" in pipe[-1].history_


def test_groups_of_another_length_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        PneumoniaCNNClassifier(epochs=1).fit(X, y, groups=np.arange(len(y) - 1))


def test_three_and_two_dimensional_inputs(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0)
    assert clf.fit(X, y).image_shape_ == (16, 16, 1)
    table = X.reshape(len(X), -1)[:, :10]
    assert clf.fit(table, y).image_shape_ == (1, 10, 1)
    assert clf.predict_proba(table).shape == (len(X), 2)


def test_sample_weight_is_not_modified(data):
    X, y = data
    weights = np.ones(len(y))
    PneumoniaCNNClassifier(class_weight="balanced", epochs=1, random_state=0).fit(
        X, y, sample_weight=weights
    )
    np.testing.assert_array_equal(weights, 1.0)


def test_sample_weight_reaches_the_loss(data):
    X, y = data
    weights = np.where(y == 0, 1.0, 0.0)
    clf = PneumoniaCNNClassifier(early_stopping=False, **FAST)
    # Unweighted, these few epochs leave every score above 0.5; with every
    # pneumonia image weighted 0, only the normal ones pull, all downwards.
    assert clf.fit(X, y).predict_proba(X)[:, 1].min() > 0.5
    assert clf.fit(X, y, sample_weight=weights).predict_proba(X)[:, 1].max() < 0.5


# --- errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0, 1, 2] * 4), "Only binary classification"),
        (np.zeros(12, int), "one class only"),
        (np.linspace(0, 1, 12), "Unknown label type"),
    ],
)
def test_bad_targets_are_refused(y, message):
    X = np.zeros((12, 8, 8), np.float32)
    with pytest.raises(ValueError, match=message):
        PneumoniaCNNClassifier(epochs=1).fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixels_are_refused(data, bad):
    X, y = data
    X = X.copy()
    X[3, 2, 2] = bad
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        PneumoniaCNNClassifier(epochs=1).fit(X, y)


def test_length_mismatch_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        PneumoniaCNNClassifier(epochs=1).fit(X, y[:-1])


def test_wrong_rank_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="5 dimensions"):
        PneumoniaCNNClassifier(epochs=1).fit(X[:, :, :, None, None], y)


def test_other_image_size_than_in_fit_is_refused(fitted):
    with pytest.raises(ValueError, match=r"32x32x1 .* 16x16x1 .* image size"):
        fitted.predict_proba(np.zeros((2, 32, 32, 1), np.float32))


def test_other_table_width_than_in_fit_is_refused(data):
    X, y = data
    clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False).fit(X[:, 0, :], y)
    with pytest.raises(ValueError, match=r"X has 8 features, but .* expecting 16"):
        clf.predict(X[:, 0, :8])


@pytest.mark.parametrize(
    "params",
    [
        {"filters": 0},
        {"dropout": 1.0},
        {"padding": "full"},
        {"optimizer": "adagrad"},
        {"threshold": 1.5},
        {"threshold": "best"},
        {"learning_rate": -1.0},
        {"validation_fraction": 0.0},
    ],
)
def test_invalid_parameters_are_refused_at_fit(data, params):
    X, y = data
    clf = PneumoniaCNNClassifier(**params)  # constructing never validates
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        clf.fit(X, y)


def test_predict_before_fit_is_refused(data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PneumoniaCNNClassifier().predict(data[0])
