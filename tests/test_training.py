"""The training glue behind PneumoniaCNNClassifier: split, input pipeline, order."""

import logging

import numpy as np
import pytest
from synthetic import blob_images

from pneumoclf import PneumoniaCNNClassifier, _utils
from pneumoclf._training import inference, pipeline, run, validation
from pneumoclf._training.settings import Settings
from pneumoclf.architecture import build_cnn

FAST = dict(epochs=3, batch_size=16, random_state=0, verbose=0)


@pytest.fixture(scope="module")
def data():
    return blob_images(80, 16, seed=0)


@pytest.fixture
def parts(monkeypatch):
    """The training and validation indices of the next fit, once it has split."""
    recorded = {}
    split = validation.validation_split

    def recording_split(*args):
        recorded["train"], recorded["validation"] = split(*args)
        return recorded["train"], recorded["validation"]

    monkeypatch.setattr(run, "validation_split", recording_split)
    return recorded


def test_groups_keep_each_patient_on_one_side_of_the_validation_split(data, parts):
    X, y = data
    groups = np.arange(len(y)) // 4
    PneumoniaCNNClassifier(**FAST).fit(X, y, groups=groups)
    assert len(parts["validation"]) >= 4
    assert set(groups[parts["train"]]).isdisjoint(groups[parts["validation"]])
    assert len(parts["train"]) + len(parts["validation"]) == len(y)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize(
    "settings",
    [
        {"threshold": "auto"},
        {"threshold": 0.3, "calibration": None},
        {"threshold": 0.3, "calibration": "platt", "prevalence": 0.2},
        {"threshold": "auto", "calibration": "platt", "prevalence": 0.8},
    ],
)
def test_the_validation_report_describes_the_validation_part(data, parts, settings):
    from sklearn.metrics import recall_score, roc_auc_score

    X, y = data
    groups = np.arange(len(y)) // 2
    classifier = PneumoniaCNNClassifier(**FAST, **settings).fit(X, y, groups=groups)
    validation = parts["validation"]
    y_validation = y[validation]
    probabilities = classifier.predict_proba(X[validation])[:, 1]
    called = classifier.predict(X[validation])

    assert classifier.validation_report_ == pytest.approx(
        {
            "n_images": len(validation),
            "n_pneumonia": int(y_validation.sum()),
            "n_patients": len(np.unique(groups[validation])),
            "threshold": classifier.threshold_,
            "recall": recall_score(y_validation, called),
            "specificity": recall_score(y_validation, called, pos_label=0),
            "roc_auc": roc_auc_score(y_validation, probabilities),
        }
    )


@pytest.fixture(scope="module")
def fitted_without_groups(data):
    return PneumoniaCNNClassifier(**FAST).fit(*data)


def test_a_fit_without_groups_or_validation_part_reports_accordingly(
    data, fitted_without_groups
):
    X, y = data
    with_validation = fitted_without_groups
    assert with_validation.validation_report_["n_patients"] is None
    assert with_validation.validation_report_["n_images"] == round(0.1 * len(y))
    without = PneumoniaCNNClassifier(
        **FAST, early_stopping=False, threshold=0.5, calibration=None
    ).fit(X, y)
    assert without.validation_report_ is None


@pytest.mark.parametrize(
    "spoil, fault",
    [
        (lambda good: {"n_images": 4}, "must be None or a dict"),
        (lambda good: "recall 1", "must be None or a dict"),
        (lambda good: {**good, "recall": 1.5}, r"\['recall'\] must be a number in"),
        (lambda good: {**good, "roc_auc": float("nan")}, r"\['roc_auc'\] must be"),
        (lambda good: {**good, "n_images": -1}, "counts must be non-negative"),
        (lambda good: {**good, "n_patients": 2.5}, "counts must be non-negative"),
    ],
)
def test_a_fitted_state_with_a_bad_validation_report_is_refused(
    fitted_without_groups, spoil, fault
):
    classifier = fitted_without_groups
    state = classifier.get_fitted_state()
    state["validation_report_"] = spoil(state["validation_report_"])
    with pytest.raises(ValueError, match=fault):
        classifier.set_fitted_state(state)


def test_training_batches_cover_the_rows_once_per_epoch_in_new_orders():
    values = np.arange(10, dtype=np.float32) * 10
    tensors = pipeline.as_tensors(values, values + 1)
    rows = np.array([7, 2, 5, 0, 9, 4, 3])
    batches = pipeline.batches(tensors, rows, 3, shuffle=True, seed=0)
    epochs = []
    for _ in range(2):
        epoch = [(x.numpy(), y.numpy()) for x, y in batches]
        assert [len(x) for x, _ in epoch] == [3, 3, 1]
        seen = np.concatenate([x for x, _ in epoch])
        np.testing.assert_array_equal(np.concatenate([y for _, y in epoch]), seen + 1)
        np.testing.assert_array_equal(np.sort(seen), np.sort(values[rows]))
        epochs.append(seen)
    assert not np.array_equal(epochs[0], epochs[1])
    in_order = [x.numpy() for x, _ in pipeline.batches(tensors, rows, 3)]
    np.testing.assert_array_equal(np.concatenate(in_order), values[rows])


class _PositionDependentNetwork:
    """Scores an image by its mean plus a rounding that depends on its place."""

    def predict(self, batches, verbose=0):
        scores = []
        for (batch,) in batches:
            means = batch.numpy().reshape(len(batch), -1).mean(axis=1)
            scores.append(means + 1e-7 * np.arange(len(means)))
        return np.concatenate(scores)[:, np.newaxis]


def test_reordering_the_images_cannot_change_their_scores():
    X, _ = blob_images(23, 8, seed=4)
    X = X[..., np.newaxis]
    order = np.random.default_rng(0).permutation(len(X))
    network = _PositionDependentNetwork()

    scores = inference.network_scores(network, X, batch_size=4)
    reordered = inference.network_scores(network, X[order], batch_size=4)

    np.testing.assert_array_equal(scores[order], reordered)
    np.testing.assert_allclose(scores, X.reshape(len(X), -1).mean(axis=1), atol=1e-6)


@pytest.mark.parametrize(
    ("monitor", "watched", "mode"),
    [("loss", "val_loss", "min"), ("auc", "val_auc", "max")],
)
def test_early_stopping_and_the_schedule_watch_the_chosen_figure(
    monitor, watched, mode
):
    classifier = PneumoniaCNNClassifier(monitor=monitor, lr_schedule="plateau")
    settings = Settings.from_params(classifier.get_params())
    callbacks = run._callbacks(settings, monitored=True)
    assert [type(c).__name__ for c in callbacks] == [
        "EarlyStopping",
        "ReduceLROnPlateau",
    ]
    for callback in callbacks:
        assert callback.monitor == watched
    assert callbacks[0].mode == mode
    assert run._callbacks(settings, monitored=False) == []


@pytest.mark.slow
def test_an_automatic_threshold_of_one_is_kept_below_one(data, monkeypatch):
    X, y = data
    monkeypatch.setattr(validation, "choose_threshold", lambda *args, **kw: 1.0)
    classifier = PneumoniaCNNClassifier(threshold="auto", **FAST).fit(X, y)

    assert classifier.threshold_ == validation.HIGHEST_THRESHOLD < 1
    assert classifier.predict_proba(np.ones((1, *X.shape[1:]))).shape == (1, 2)
    assert _utils.is_pneumonia(np.float32(1), classifier.threshold_)
    classifier.set_fitted_state(classifier.get_fitted_state())  # a valid state


@pytest.mark.slow
def test_the_automatic_threshold_weighs_the_validation_images(data, monkeypatch):
    X, y = data
    weights = 1 + np.arange(len(y)) / 1000  # each image its own weight
    seen = {}

    def recording_choice(y_true, y_score, **kwargs):
        seen.update(kwargs, n_images=len(y_true))
        return 0.5

    monkeypatch.setattr(validation, "choose_threshold", recording_choice)
    PneumoniaCNNClassifier(threshold="auto", **FAST).fit(X, y, sample_weight=weights)

    assert len(seen["sample_weight"]) == seen["n_images"] > 0
    assert np.isin(seen["sample_weight"], weights.astype(np.float32)).all()


@pytest.mark.slow
def test_many_fits_print_no_retracing_notice(data):
    X, y = data
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    larger = X.repeat(2, axis=1).repeat(2, axis=2)
    try:
        # Enough new networks for TensorFlow to speak up, of other image sizes and
        # architectures, as a search makes them; each scores a batch or less.
        for images, filters in [(X, 4), (X, 8), (larger, 4), (larger, 8)] * 2:
            classifier = PneumoniaCNNClassifier(**{**FAST, "filters": filters})
            classifier.fit(images[:40], y[:40]).predict_proba(images[40:44])
    finally:
        logger.removeHandler(handler)

    assert not [record for record in records if "retracing" in record.getMessage()]


def test_a_batch_or_less_is_scored_as_model_predict_scores_it(data):
    X, _ = data
    model = build_cnn((16, 16, 1), filters=4, dense_units=4, seed=0)
    images = X[:5, :, :, np.newaxis]
    order = inference._content_order(images)
    through_predict = np.empty(5, dtype=np.float32)
    through_predict[order] = model.predict(images[order], verbose=0).ravel()
    np.testing.assert_array_equal(
        inference.network_scores(model, images, batch_size=16), through_predict
    )


def test_the_compiled_inference_does_not_keep_a_network_alive(data):
    import gc
    import weakref

    X, _ = data
    model = build_cnn((16, 16, 1), filters=4, dense_units=4, seed=0)
    inference.network_scores(model, X[:2, :, :, np.newaxis], batch_size=16)
    network = weakref.ref(model)
    assert network() in inference._INFERENCE_FUNCTIONS
    del model
    gc.collect()
    assert network() is None
