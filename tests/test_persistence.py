import json
import math
import re
import zipfile

import keras
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from synthetic import blob_images, write_images

from pneumoclf import ImageLoader, PneumoniaCNNClassifier, __version__
from pneumoclf.persistence import (
    FORMAT_VERSION,
    ModelFileError,
    _from_json,
    _to_json,
    load_model,
    save_model,
)

# A small network keeps each fit to a second or two.
SMALL = dict(n_conv_blocks=2, filters=4, dense_units=8, epochs=2, random_state=0)
# Integer labels are covered by the pipeline.
LABELS = {
    "strings": np.array(["NORMAL", "PNEUMONIA"]),
    "bools": np.array([False, True]),
}


@pytest.fixture(scope="module")
def images():
    return blob_images(40, 16, seed=0)


@pytest.fixture(scope="module")
def classifiers(images):
    """A fitted classifier per kind of label; "auto" threshold for strings."""
    X, y01 = images
    return {
        kind: PneumoniaCNNClassifier(
            threshold="auto" if kind == "strings" else 0.3, **SMALL
        ).fit(X, labels[y01])
        for kind, labels in LABELS.items()
    }


@pytest.fixture
def fitted(classifiers, images):
    return classifiers["strings"], images[0]


@pytest.fixture(scope="module")
def fitted_pipeline(images, tmp_path_factory):
    X, y = images
    paths = np.array(write_images(tmp_path_factory.mktemp("xrays"), X, y))
    pipeline = Pipeline(
        [
            ("images", ImageLoader(image_size=(16, 16))),
            ("model", PneumoniaCNNClassifier(class_weight={0: 1.0, 1: 2.0}, **SMALL)),
        ]
    )
    return pipeline.fit(paths, y), paths


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model.pneumoclf"
    save_model(fitted[0], path)
    return path


def _fitted_attributes(estimator):
    return {
        name: value for name, value in vars(estimator).items() if name.endswith("_")
    }


def _assert_same_network(loaded, original):
    assert json.loads(loaded.to_json()) == json.loads(original.to_json())
    for mine, theirs in zip(loaded.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def _assert_same_classifier(loaded, original, X):
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    assert loaded.get_params() == original.get_params()
    assert loaded.threshold_ == original.threshold_
    attributes = _fitted_attributes(original)
    assert _fitted_attributes(loaded).keys() == attributes.keys()
    for name, value in attributes.items():
        restored = getattr(loaded, name)
        assert type(restored) is type(value), name
        if name == "model_":
            _assert_same_network(restored, value)
        elif isinstance(value, np.ndarray):
            assert restored.dtype == value.dtype, name
            np.testing.assert_array_equal(restored, value)
        else:
            assert restored == value, name


@pytest.mark.parametrize("kind", list(LABELS))
def test_classifier_round_trip_predicts_exactly_the_same(
    classifiers, images, kind, tmp_path
):
    clf, X = classifiers[kind], images[0]
    save_model(clf, tmp_path / "model.pneumoclf")
    loaded = load_model(tmp_path / "model.pneumoclf")
    _assert_same_classifier(loaded, clf, X)
    assert loaded.score(X, clf.predict(X)) == 1.0


def test_numeric_threshold_of_a_loaded_model_can_change(fitted, saved):
    clf, X = fitted
    loaded = load_model(saved).set_params(threshold=0.9)
    scores = clf.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(
        loaded.predict(X), clf.classes_[(scores >= 0.9).astype(int)]
    )


def test_pipeline_round_trip(fitted_pipeline, tmp_path):
    pipeline, paths = fitted_pipeline
    path = tmp_path / "pipe.pneumoclf"
    save_model(pipeline, path)
    loaded = load_model(path)
    assert isinstance(loaded, Pipeline)
    assert [name for name, _ in loaded.steps] == ["images", "model"]
    assert loaded.get_params(deep=False).keys() == pipeline.get_params(False).keys()
    # The tuple image size and the dict with int keys come back as they were.
    assert loaded.named_steps["images"].image_size == (16, 16)
    assert loaded.named_steps["model"].class_weight == {0: 1.0, 1: 2.0}
    assert loaded.classes_.dtype == pipeline.classes_.dtype
    assert loaded.classes_.dtype.kind == "i"
    np.testing.assert_array_equal(
        loaded.predict_proba(paths), pipeline.predict_proba(paths)
    )
    np.testing.assert_array_equal(loaded.predict(paths), pipeline.predict(paths))


def test_file_holds_metadata_and_native_keras_model(fitted, saved):
    clf, _ = fitted
    with zipfile.ZipFile(saved) as archive:
        assert set(archive.namelist()) == {"metadata.json", "model.keras"}
        metadata = json.loads(archive.read("metadata.json"))
        (saved.parent / "inner.keras").write_bytes(archive.read("model.keras"))
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["pneumoclf_version"] == __version__
    assert metadata["keras_version"] == keras.__version__
    assert metadata["estimator"]["class"] == "pneumoclf.PneumoniaCNNClassifier"
    assert metadata["fitted"]["chosen_threshold_"] == clf.chosen_threshold_
    assert len(metadata["model_sha256"]) == 64
    inner = keras.saving.load_model(saved.parent / "inner.keras", safe_mode=True)
    assert inner.count_params() == clf.model_.count_params()


def test_callbacks_are_stored_as_none(fitted, tmp_path):
    clf, _ = fitted
    clf.set_params(callbacks=[keras.callbacks.TerminateOnNaN()])
    try:
        save_model(clf, tmp_path / "m.pneumoclf")
    finally:
        clf.set_params(callbacks=None)
    assert load_model(tmp_path / "m.pneumoclf").callbacks is None


@pytest.mark.parametrize(
    "value",
    [None, True, 3, -1.5, "auto", math.inf, -math.inf, (16, 32), [1, (2, 3)],
     {0: 1.0, "NORMAL": [1, 2], True: {"nested": (1,)}}],
)  # fmt: skip
def test_parameter_values_survive_json(value):
    assert _from_json(json.loads(json.dumps(_to_json(value, "p")))) == value


def test_nan_survives_json():
    assert math.isnan(_from_json(json.loads(json.dumps(_to_json(math.nan, "p")))))


# --------------------------------------------------------------------- refusals


def test_unfitted_classifier_is_refused(tmp_path):
    with pytest.raises(NotFittedError, match="fit it before saving"):
        save_model(PneumoniaCNNClassifier(), tmp_path / "m.pneumoclf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make_estimator, message",
    [
        (lambda clf: LogisticRegression(), "got a LogisticRegression"),
        (
            lambda clf: Pipeline([("scale", StandardScaler()), ("cnn", clf)]),
            r"step 'scale' is StandardScaler\(\)",
        ),
        (
            lambda clf: Pipeline([("cnn", clf), ("load", ImageLoader())]),
            r"last step 'load' is ImageLoader\(\)",
        ),
        (
            lambda clf: Pipeline([("skip", "passthrough"), ("cnn", clf)]),
            "step 'skip' is 'passthrough'",
        ),
    ],
)
def test_unsupported_estimators_are_refused(fitted, tmp_path, make_estimator, message):
    with pytest.raises(ModelFileError, match=message):
        save_model(make_estimator(fitted[0]), tmp_path / "m.pneumoclf")
    assert list(tmp_path.iterdir()) == []


def test_unserialisable_parameter_is_refused_by_name(fitted_pipeline, tmp_path):
    pipeline, _ = fitted_pipeline
    pipeline.set_params(model__random_state=np.random.RandomState(0))
    try:
        with pytest.raises(ModelFileError, match=r"'model__random_state'.*RandomState"):
            save_model(pipeline, tmp_path / "m.pneumoclf")
    finally:
        pipeline.set_params(model__random_state=SMALL["random_state"])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- atomic writes


def test_interrupted_save_leaves_no_file(fitted, tmp_path, monkeypatch):
    def fail_midway(self, name, data, *args, **kwargs):
        if name == "model.keras":
            raise KeyboardInterrupt
        return original_writestr(self, name, data, *args, **kwargs)

    original_writestr = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_midway)
    with pytest.raises(KeyboardInterrupt):
        save_model(fitted[0], tmp_path / "m.pneumoclf")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_save_keeps_the_previous_file(fitted, saved, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setattr(zipfile.ZipFile, "writestr", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        save_model(fitted[0], saved)
    assert saved.read_bytes() == before
    assert list(saved.parent.iterdir()) == [saved]


# --------------------------------------------------------------- loading checks


def _rewrite(path, *, metadata=None, model=None, members=None):
    """Rewrite a model file with some of its parts replaced."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    if metadata is not None:
        parts["metadata.json"] = json.dumps(
            {**json.loads(parts["metadata.json"]), **metadata}
        )
    if model is not None:
        parts["model.keras"] = model
    with zipfile.ZipFile(path, "w") as archive:
        for name in members if members is not None else parts:
            archive.writestr(name, parts[name])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pneumoclf")


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "model.pneumoclf"
    path.write_text("hello")
    with pytest.raises(
        ModelFileError, match=re.escape(f"{path} is not a pneumoclf model file")
    ):
        load_model(path)


def test_zip_without_the_members_is_refused(saved):
    _rewrite(saved, members=["model.keras"])
    with pytest.raises(
        ModelFileError, match="not a pneumoclf model file: the archive lacks metadata"
    ):
        load_model(saved)


def test_other_format_is_refused(saved):
    _rewrite(saved, metadata={"format": "something-else"})
    with pytest.raises(ModelFileError, match="not a pneumoclf model file"):
        load_model(saved)


def test_flipped_bytes_are_detected(saved):
    data = bytearray(saved.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(255 - byte for byte in data[middle : middle + 8])
    saved.write_bytes(bytes(data))
    with pytest.raises(
        ModelFileError, match=re.escape(f"{saved} is corrupt or has been tampered")
    ):
        load_model(saved)


def test_replaced_model_is_detected_by_its_checksum(saved):
    with zipfile.ZipFile(saved) as archive:
        model = archive.read("model.keras")
    _rewrite(saved, model=model + b"\0")
    with pytest.raises(ModelFileError, match=r"tampered with.*SHA-256 checksum"):
        load_model(saved)


def test_other_major_format_version_is_refused(saved):
    _rewrite(saved, metadata={"format_version": "3.0"})
    with pytest.raises(
        ModelFileError,
        match=r"incompatible.*version 3\.0.*reads format versions 1\.x and 2\.x",
    ):
        load_model(saved)


def test_newer_minor_format_version_loads(fitted, saved):
    _rewrite(saved, metadata={"format_version": "2.7"})
    _assert_same_classifier(load_model(saved), *fitted)


def test_a_file_of_format_1_loads_with_its_fitted_state(fitted, saved):
    clf, X = fitted
    with zipfile.ZipFile(saved) as archive:
        state = json.loads(archive.read("metadata.json"))["fitted"]
    format_1_state = {
        "classes": state["classes_"]["ndarray"],
        "image_shape": state["image_shape_"]["tuple"],
        "n_features_in": state["n_features_in_"],
        "threshold": clf.threshold_,
        "history": state["history_"],
        "n_epochs": state["n_epochs_"],
    }
    _rewrite(saved, metadata={"format_version": "1.0", "fitted": format_1_state})

    _assert_same_classifier(load_model(saved), clf, X)


def test_newer_pneumoclf_version_loads_with_a_warning(fitted, saved):
    _rewrite(saved, metadata={"pneumoclf_version": "99.0"})
    with pytest.warns(UserWarning, match="saved by pneumoclf 99.0, newer"):
        loaded = load_model(saved)
    _assert_same_classifier(loaded, *fitted)


def test_only_known_classes_are_instantiated(saved):
    with zipfile.ZipFile(saved) as archive:
        estimator = json.loads(archive.read("metadata.json"))["estimator"]
    _rewrite(saved, metadata={"estimator": {**estimator, "class": "os.system"}})
    with pytest.raises(ModelFileError, match=r"unknown class 'os\.system'"):
        load_model(saved)
