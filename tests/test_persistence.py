import contextlib
import errno
import hashlib
import io
import json
import math
import os
import pickle
import re
import stat
import struct
import subprocess
import tempfile
import tracemalloc
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest
from awkward import (
    SIDE,
    dangling_symlink,
    named_pipe,
    symlink_loop,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from synthetic import blob_images, write_images

import pneumoclf.persistence as persistence
from pneumoclf import ImageLoader, PneumoniaCNNClassifier, __version__
from pneumoclf.persistence import (
    FORMAT_VERSION,
    ModelFileError,
    load_model,
    read_model_card,
    save_model,
)
from pneumoclf.persistence._loading import _from_json
from pneumoclf.persistence._saving import _to_json

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
    """A fitted classifier per kind of label; calibrated, "auto" for strings."""
    X, y01 = images
    settings = {
        "strings": dict(threshold="auto", calibration="platt"),
        "bools": dict(threshold=0.3),
    }
    return {
        kind: PneumoniaCNNClassifier(**settings[kind], **SMALL).fit(X, labels[y01])
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


def _architecture(network):
    """The network's layers and their settings, but for names and random seeds."""
    return [
        (type(layer).__name__, layer.output.shape, _without_names(layer.get_config()))
        for layer in network.layers
    ]


def _without_names(config):
    if not isinstance(config, dict):
        return config
    return {
        key: _without_names(value)
        for key, value in config.items()
        if key not in ("name", "seed")
    }


def _assert_same_network(loaded, original):
    # The network is rebuilt from the parameters: the same layers, the same
    # weights and optimiser state, but names and seeds of its own.
    assert _architecture(loaded) == _architecture(original)
    assert (
        loaded.optimizer.get_config()["learning_rate"]
        == (original.optimizer.get_config()["learning_rate"])
    )
    for mine, theirs in zip(
        loaded.optimizer.variables, original.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
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
        elif name in ("input_reference_", "population_reference_"):
            for part, stored in zip(restored, value, strict=True):
                np.testing.assert_array_equal(part, stored)
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


def test_a_full_disk_names_the_model_file_and_leaves_nothing(
    fitted, tmp_path, monkeypatch
):
    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    path = tmp_path / "m.pneumoclf"
    with pytest.raises(OSError, match="No space left on device") as raised:
        save_model(fitted[0], path)

    assert raised.value.filename == str(path)
    assert raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_killed_save_leaves_an_orphan_the_next_save_removes(fitted, tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    path = tmp_path / "m.pneumoclf"
    orphan = tmp_path / f".m.pneumoclf.{ended.pid}.0123456789abcdef.tmp"
    in_progress = tmp_path / f".m.pneumoclf.{os.getpid()}.0123456789abcdef.tmp"
    unrelated = [tmp_path / ".m.pneumoclf.notes.tmp", tmp_path / ".other.1.tmp"]
    for leftover in [orphan, in_progress, *unrelated]:
        leftover.write_bytes(b"partial")

    save_model(fitted[0], path)

    assert sorted(tmp_path.iterdir()) == sorted([path, in_progress, *unrelated])


def test_interrupted_save_keeps_the_previous_file(fitted, saved, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setattr(zipfile.ZipFile, "writestr", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        save_model(fitted[0], saved)
    assert saved.read_bytes() == before
    assert list(saved.parent.iterdir()) == [saved]


# --------------------------------------------------------------- loading checks


def _rewrite(path, *, metadata=None, model=None, card=None, members=None):
    """Rewrite a model file with some of its parts replaced."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    if metadata is not None:
        parts["metadata.json"] = json.dumps(
            {**json.loads(parts["metadata.json"]), **metadata}
        )
    if model is not None:
        parts["model.keras"] = model
    if card is not None:
        parts["model_card.md"] = card
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


@pytest.mark.slow
def test_a_file_of_format_1_loads_with_its_fitted_state(classifiers, images, tmp_path):
    # Format 1 knew no calibration: an uncalibrated classifier, auto threshold.
    clf, X = classifiers["bools"], images[0]
    clf = PneumoniaCNNClassifier(**{**clf.get_params(), "threshold": "auto"})
    clf.fit(X, images[1].astype(bool))
    saved = tmp_path / "format_1.pneumoclf"
    save_model(clf, saved)
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

    loaded = load_model(saved)
    # Format 1 kept no record of the validation part, nor an input check, nor a
    # population reference.
    assert loaded.validation_report_ is None and loaded.input_reference_ is None
    assert loaded.population_reference_ is None and loaded.adaptations_ == ()
    loaded.validation_report_ = clf.validation_report_
    loaded.input_reference_ = clf.input_reference_
    loaded.population_reference_ = clf.population_reference_
    assert loaded.training_digests_ is None
    loaded.training_digests_ = clf.training_digests_
    _assert_same_classifier(loaded, clf, X)


def test_a_file_of_format_2_3_loads_without_a_population_reference(fitted, saved):
    with zipfile.ZipFile(saved) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    del metadata["fitted"]["population_reference_"]
    del metadata["fitted"]["adaptations_"]
    del metadata["fitted"]["training_digests_"]
    _rewrite(saved, metadata={"format_version": "2.3", "fitted": metadata["fitted"]})
    loaded = load_model(saved)
    assert loaded.population_reference_ is None and loaded.adaptations_ == ()
    assert loaded.training_digests_ is None


def test_a_file_of_format_2_4_cannot_tell_its_training_images(fitted, saved):
    with zipfile.ZipFile(saved) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    del metadata["fitted"]["training_digests_"]
    _rewrite(saved, metadata={"format_version": "2.4", "fitted": metadata["fitted"]})
    loaded = load_model(saved)
    assert loaded.training_digests_ is None
    with pytest.raises(ValueError, match="keeps no digests of its training images"):
        loaded.trained_on(np.zeros((1, *loaded.image_shape_), np.float32))


@pytest.mark.parametrize(
    "digests",
    [{"ndarray": {"dtype": "<u8", "values": [5, 3]}},
     {"ndarray": {"dtype": "<i8", "values": [3, 5]}},
     {"ndarray": {"dtype": "<u8", "values": [3, 3]}}],
    ids=["unsorted", "signed", "repeated"],
)  # fmt: skip
def test_damaged_training_digests_are_refused(saved, digests):
    _assert_refused_with_fitted(saved, "training_digests_", digests)


def _assert_refused_with_fitted(saved, name, value):
    """The file with its fitted ``name`` replaced by ``value`` does not load."""
    with zipfile.ZipFile(saved) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    metadata["fitted"][name] = value
    _rewrite(saved, metadata={"fitted": metadata["fitted"]})
    with pytest.raises(ModelFileError, match=name):
        load_model(saved)


@pytest.mark.parametrize(
    "reference",
    [
        {"tuple": [[0.5], [2], None]},
        {"tuple": [{"ndarray": {"dtype": "<f4", "values": [1.5]}},
                   {"ndarray": {"dtype": "|b1", "values": [True]}}, None]},
        {"tuple": [{"ndarray": {"dtype": "<f4", "values": [0.5, 0.2]}},
                   {"ndarray": {"dtype": "|b1", "values": [True]}}, None]},
    ],
    ids=["label-not-bool", "score-above-1", "lengths-differ"],
)  # fmt: skip
def test_a_damaged_population_reference_is_refused(saved, reference):
    _assert_refused_with_fitted(saved, "population_reference_", reference)


def test_a_file_of_format_2_1_loads_without_a_validation_report(fitted, saved):
    with zipfile.ZipFile(saved) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    del metadata["fitted"]["validation_report_"]
    _rewrite(saved, metadata={"format_version": "2.1", "fitted": metadata["fitted"]})

    loaded = load_model(saved)
    assert fitted[0].validation_report_ is not None
    assert loaded.validation_report_ is None
    assert read_model_card(saved) is None


CARD = "# Model card\n\n- trained on **48** images ✓\n"


def test_a_model_file_carries_its_model_card(fitted, tmp_path):
    path = tmp_path / "model.pneumoclf"
    save_model(fitted[0], path, model_card=CARD)
    assert read_model_card(path) == CARD
    _assert_same_classifier(load_model(path), *fitted)
    with zipfile.ZipFile(path) as archive:
        assert archive.read("model_card.md").decode("utf-8") == CARD


def test_a_file_saved_without_a_card_has_none(saved):
    assert read_model_card(saved) is None


def test_an_altered_model_card_is_refused(fitted, tmp_path):
    path = tmp_path / "model.pneumoclf"
    save_model(fitted[0], path, model_card=CARD)
    _rewrite(path, card=CARD.replace("48", "4800").encode())
    for read in (read_model_card, load_model):
        with pytest.raises(ModelFileError, match=r"checksum of model_card\.md"):
            read(path)


def test_a_removed_model_card_is_refused(fitted, tmp_path):
    path = tmp_path / "model.pneumoclf"
    save_model(fitted[0], path, model_card=CARD)
    _rewrite(path, members=["metadata.json", "model.keras"])
    with pytest.raises(
        ModelFileError, match=r"names a model_card\.md the archive lacks"
    ):
        read_model_card(path)


def test_a_signed_card_is_checked_with_the_key(fitted, tmp_path):
    path = tmp_path / "model.pneumoclf"
    save_model(fitted[0], path, model_card=CARD, key="a secret of some length")
    assert read_model_card(path, key="a secret of some length") == CARD
    with pytest.raises(ModelFileError, match="signed with another key"):
        read_model_card(path, key="another secret, as long")
    forged = b"# Model card\n\n- approved for diagnosis\n"
    _rewrite(
        path,
        metadata={"model_card_sha256": hashlib.sha256(forged).hexdigest()},
        card=forged,
    )
    assert read_model_card(path) == forged.decode()  # consistent, but not signed
    with pytest.raises(ModelFileError, match="altered since it was signed"):
        read_model_card(path, key="a secret of some length")


def test_a_model_card_must_be_text(fitted, tmp_path):
    with pytest.raises(TypeError, match="model_card must be a str, got bytes"):
        save_model(fitted[0], tmp_path / "m.pneumoclf", model_card=CARD.encode())
    assert list(tmp_path.iterdir()) == []


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


# ---------------------------------------------------------- hostile model files


def test_saving_over_a_directory_names_it_and_leaves_nothing(
    awkward_pipeline, tmp_path
):
    folder = tmp_path / "model.pneumoclf"
    folder.mkdir()

    with pytest.raises(IsADirectoryError) as raised:
        save_model(awkward_pipeline, folder)

    assert raised.value.filename == str(folder)
    assert list(tmp_path.iterdir()) == [folder]
    assert list(folder.iterdir()) == []


def test_saving_over_a_pipe_is_refused_and_leaves_the_pipe(awkward_pipeline, tmp_path):
    pipe = tmp_path / "model.pneumoclf"
    os.mkfifo(pipe)
    with pytest.raises(FileExistsError, match="Not a regular file") as raised:
        save_model(awkward_pipeline, pipe)
    assert raised.value.filename == str(pipe)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert list(tmp_path.iterdir()) == [pipe]


def test_saving_into_a_missing_folder_names_the_folder(awkward_pipeline, tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        save_model(awkward_pipeline, tmp_path / "absent" / "model.pneumoclf")

    assert raised.value.filename == str(tmp_path / "absent")
    assert ".tmp" not in str(raised.value)


@pytest.mark.parametrize(
    ("make_path", "error"),
    [
        (lambda folder: folder, IsADirectoryError),
        (lambda folder: folder / "absent" / "model.pneumoclf", FileNotFoundError),
        (dangling_symlink, FileNotFoundError),
        (symlink_loop, OSError),
    ],
    ids=["directory", "missing-folder", "dangling-link", "link-loop"],
)
def test_loading_from_a_path_that_is_no_file_names_it(tmp_path, make_path, error):
    path = make_path(tmp_path)

    with pytest.raises(error) as raised:
        load_model(path)

    assert raised.value.filename == str(path)


def test_a_pipe_is_refused_as_a_model_file_without_reading_it(tmp_path):
    pipe = named_pipe(tmp_path)
    # Holding both ends with data inside makes a reader fail fast instead of
    # waiting for a writer, should the pipe ever be opened.
    both_ends = os.open(pipe, os.O_RDWR)
    try:
        os.write(both_ends, b"PK\x03\x04 not a model")
        with pytest.raises(ModelFileError, match="it is not a regular file"):
            load_model(pipe)
        assert os.read(both_ends, 64) == b"PK\x03\x04 not a model"
    finally:
        os.close(both_ends)


def test_a_linked_model_file_loads_and_predicts_the_same(
    awkward_model_file, awkward_pipeline, held_out_files, tmp_path
):
    os.symlink(awkward_model_file, tmp_path / "latest.pneumoclf")

    loaded = load_model(tmp_path / "latest.pneumoclf")

    np.testing.assert_array_equal(
        loaded.predict_proba(held_out_files[0]), held_out_files[1]
    )


def test_saving_over_a_link_never_writes_through_it(
    awkward_pipeline, awkward_model_file, tmp_path
):
    before = awkward_model_file.read_bytes()
    link = tmp_path / "link.pneumoclf"
    os.symlink(awkward_model_file, link)

    save_model(awkward_pipeline, link)

    assert awkward_model_file.read_bytes() == before
    assert not link.is_symlink()
    load_model(link)


def read_members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def with_metadata(awkward_model_file, destination, change):
    members = read_members(awkward_model_file)
    metadata = json.loads(members["metadata.json"])
    change(metadata)
    members["metadata.json"] = json.dumps(metadata)
    return write_members(destination, members)


def test_unexpected_members_are_ignored_and_never_extracted(
    awkward_model_file, held_out_files, tmp_path
):
    members = read_members(awkward_model_file)
    members.update({"../../evil.sh": b"rm -rf ~\n", "/etc/passwd": b"root::0:0",
                    "payload.pkl": b"\x80\x05cos\nsystem\n."})  # fmt: skip
    (tmp_path / "inside").mkdir()
    path = write_members(tmp_path / "inside" / "m.pneumoclf", members)

    loaded = load_model(path)

    np.testing.assert_array_equal(
        loaded.predict_proba(held_out_files[0]), held_out_files[1]
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inside", "m.pneumoclf"]


def _stream_zeros(archive, name, n_bytes):
    chunk = bytes(1024**2)
    with archive.open(name, "w", force_zip64=True) as member:
        for _ in range(n_bytes // len(chunk)):
            member.write(chunk)


def _peak_memory_of(function, *args):
    tracemalloc.start()
    try:
        with contextlib.suppress(ModelFileError):
            function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_oversized_metadata_is_refused_without_expanding_it(
    awkward_model_file, tmp_path
):
    path = tmp_path / "bomb.pneumoclf"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _stream_zeros(archive, "metadata.json", 65 * 1024**2)
        archive.writestr("model.keras", read_members(awkward_model_file)["model.keras"])
    assert path.stat().st_size < 1024**2

    with pytest.raises(ModelFileError, match=r"metadata\.json is implausibly large"):
        load_model(path)
    assert _peak_memory_of(load_model, path) < 4 * 1024**2


def test_a_network_that_would_expand_enormously_is_refused(
    awkward_model_file, tmp_path, monkeypatch
):
    monkeypatch.setattr(persistence._archive, "_MIN_CHECKED_EXPANSION_BYTES", 1024**2)
    path = tmp_path / "bomb.pneumoclf"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "metadata.json", read_members(awkward_model_file)["metadata.json"]
        )
        _stream_zeros(archive, "model.keras", 8 * 1024**2)

    with pytest.raises(ModelFileError, match=r"model\.keras would expand from \d+ to"):
        load_model(path)
    assert _peak_memory_of(load_model, path) < 2 * 1024**2


def _network_with_lambda(marker):
    # The marker path is a constant of the lambda's own code, so it is saved with
    # it: the file appears whenever the layer is rebuilt, that is, run.
    touch_marker = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    inputs = keras.Input((SIDE, SIDE, 1))
    marked = keras.layers.Lambda(touch_marker)(inputs)
    flat = keras.layers.Flatten()(marked)
    outputs = keras.layers.Dense(1, activation="sigmoid")(flat)
    return keras.Model(inputs, outputs)


def test_a_network_with_a_lambda_layer_is_refused_and_never_run(
    awkward_model_file, tmp_path
):
    marker = tmp_path / "lambda_ran"
    network_file = tmp_path / "lambda.keras"
    _network_with_lambda(marker).save(network_file)
    marker.unlink(missing_ok=True)
    network = network_file.read_bytes()
    metadata = json.loads(read_members(awkward_model_file)["metadata.json"])
    metadata["model_sha256"] = hashlib.sha256(network).hexdigest()
    members = {"metadata.json": json.dumps(metadata), "model.keras": network}
    path = write_members(tmp_path / "m.pneumoclf", members)

    # Only weights are read from the file, into the network the parameters
    # describe: a stored layer is never deserialised, let alone run.
    with pytest.raises(ModelFileError, match=r"weights do not fit the network"):
        load_model(path)
    assert not marker.exists()

    # The same network loaded unsafely does run its code: the payload is live.
    keras.saving.load_model(network_file, safe_mode=False)
    assert marker.exists()


def _set_class(where, name):
    def change(metadata):
        target = metadata["estimator"]
        if where == "step":
            target = target["steps"][0]
        target["class"] = name

    return change


def _set_fitted(key, value):
    def change(metadata):
        metadata["fitted"][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_class("step", "sklearn.preprocessing.FunctionTransformer"),
         r"unknown class 'sklearn\.preprocessing\.FunctionTransformer'"),
        (_set_class("top", "builtins.eval"), r"unknown class 'builtins\.eval'"),
        (_set_class("top", ["sklearn.pipeline.Pipeline"]), "unknown class"),
        (_set_class("step", None), "unknown class None"),
        (_set_fitted("image_shape_", {"tuple": [8, 8, 1]}),
         r"makes images of shape \(16, 16, 1\), but the classifier takes "
         r"image_shape_ \(8, 8, 1\)"),
        (_set_fitted("chosen_threshold_", 7.0),
         r"chosen_threshold_ must be None or a number in \[0, 1\), got 7\.0"),
        (_set_fitted("chosen_threshold_", 1.0),
         r"chosen_threshold_ must be None or a number in \[0, 1\), got 1\.0"),
        (_set_fitted("chosen_threshold_", {"float": "nan"}),
         r"chosen_threshold_ must be None or a number in \[0, 1\), got nan"),
        (_set_fitted("classes_", {"ndarray": {"dtype": "<i8", "values": [1, 0]}}),
         r"two distinct labels in sorted order, got \[1, 0\]"),
        (_set_fitted("classes_", {"ndarray": {"dtype": "<i8", "values": [1, 1]}}),
         r"two distinct labels in sorted order, got \[1, 1\]"),
        (_set_fitted("classes_",
                     {"ndarray": {"dtype": "<U200000000", "values": ["a", "b"]}}),
         r"unsupported array dtype <U200000000"),
        (_set_fitted("secret_", 1), r"unknown attributes \['secret_'\]"),
        (_set_fitted("calibration_", {"tuple": [-1.0, 0.0]}),
         r"calibration_ must be None or \(slope, intercept\)"),
        (_set_fitted("training_prevalence_", 1.0),
         r"training_prevalence_ must be a number in \(0, 1\), got 1\.0"),
    ],
    ids=["step-class", "builtin", "class-list", "class-none", "image-shape",
         "threshold", "threshold-one", "threshold-nan", "swapped-classes", "one-class",
         "huge-label-dtype", "unknown-attribute", "calibration", "prevalence"],
)  # fmt: skip
def test_tampered_metadata_is_refused_naming_the_file(
    awkward_model_file, tmp_path, change, message
):
    path = with_metadata(awkward_model_file, tmp_path / "m.pneumoclf", change)

    assert str(path) in message_of_refused_load(path, message)


def message_of_refused_load(path, message):
    """The message of the ModelFileError that loading ``path`` raises."""
    with pytest.raises(ModelFileError, match=message) as raised:
        load_model(path)
    return str(raised.value)


@pytest.mark.parametrize("depth", [990, 100_000])
def test_deeply_nested_metadata_is_refused(awkward_model_file, tmp_path, depth):
    members = read_members(awkward_model_file)
    metadata = json.loads(members["metadata.json"])
    metadata["estimator"]["steps"][1]["params"]["filters"] = "NESTED"
    nested = "[" * depth + "1" + "]" * depth
    members["metadata.json"] = json.dumps(metadata).replace('"NESTED"', nested)
    path = write_members(tmp_path / "m.pneumoclf", members)

    with pytest.raises(
        ModelFileError, match=r"not valid JSON|cannot rebuild"
    ) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


# ------------------------------------------------------- malformed archives


def _with_network(awkward_model_file, destination, write_members_into):
    """A model file whose model.keras is rewritten, its checksum updated."""
    members = read_members(awkward_model_file)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        write_members_into(archive, read_members(io.BytesIO(members["model.keras"])))
    metadata = json.loads(members["metadata.json"])
    metadata["model_sha256"] = hashlib.sha256(inner.getvalue()).hexdigest()
    members.update(
        {"metadata.json": json.dumps(metadata), "model.keras": inner.getvalue()}
    )
    return write_members(destination, members)


def _set_central_directory(path, name, *, flag_bits=None, method=None):
    """Patch one member's flags or compression method in the central directory."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    # The central directory record of the member: its signature, then fields at
    # fixed offsets, then the file name.
    start = data.index(b"PK\x01\x02")
    while data[start + 46 : start + 46 + len(name)] != name.encode():
        start = data.index(b"PK\x01\x02", start + 4)
    if flag_bits is not None:
        struct.pack_into("<H", data, start + 8, info.flag_bits | flag_bits)
    if method is not None:
        struct.pack_into("<H", data, start + 10, method)
    path.write_bytes(bytes(data))
    return path


def test_a_duplicate_member_is_refused(awkward_model_file, tmp_path):
    members = read_members(awkward_model_file)
    path = tmp_path / "m.pneumoclf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
            archive.writestr("metadata.json", members["metadata.json"])

    with pytest.raises(ModelFileError, match=r"holds metadata\.json more than once"):
        load_model(path)


def test_a_duplicate_member_of_the_network_is_refused(awkward_model_file, tmp_path):
    def write_twice(archive, members):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, data in [*members.items(), *members.items()]:
                archive.writestr(name, data)

    path = _with_network(awkward_model_file, tmp_path / "m.pneumoclf", write_twice)

    with pytest.raises(ModelFileError, match=r"model\.keras holds .* more than once"):
        load_model(path)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (dict(flag_bits=0x1), r"metadata\.json in the archive is encrypted"),
        (dict(method=99), r"metadata\.json in the archive uses compression method 99"),
    ],
    ids=["encrypted", "unknown-compression"],
)
def test_unreadable_members_are_refused_naming_the_file(
    awkward_model_file, tmp_path, patch, message
):
    path = tmp_path / "m.pneumoclf"
    path.write_bytes(awkward_model_file.read_bytes())
    _set_central_directory(path, "metadata.json", **patch)

    with pytest.raises(ModelFileError, match=message) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("number", "message"), [("1e400", "1e400 is out of range"), ("NaN", "NaN is not")]
)
def test_numbers_out_of_range_are_refused_naming_the_file(
    awkward_model_file, tmp_path, number, message
):
    members = read_members(awkward_model_file)
    metadata = json.loads(members["metadata.json"])
    metadata["estimator"]["steps"][1]["params"]["learning_rate"] = "NUMBER"
    members["metadata.json"] = json.dumps(metadata).replace('"NUMBER"', number)
    path = write_members(tmp_path / "m.pneumoclf", members)

    with pytest.raises(ModelFileError, match=message) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


# ------------------------------------------------------- bounded resources


def test_metadata_of_tiny_containers_is_refused_before_parsing(
    awkward_model_file, tmp_path
):
    members = read_members(awkward_model_file)
    metadata = json.loads(members["metadata.json"])
    n_containers = persistence._format._MAX_METADATA_CONTAINERS + 1
    members["metadata.json"] = json.dumps(metadata).replace(
        '"format"', '"padding": [' + ",".join(["[]"] * n_containers) + '], "format"', 1
    )
    assert len(members["metadata.json"]) < persistence._format._MAX_METADATA_BYTES
    path = write_members(tmp_path / "m.pneumoclf", members)

    with pytest.raises(ModelFileError, match="far more than any model needs"):
        load_model(path)
    assert _peak_memory_of(load_model, path) < 16 * 1024**2


def test_an_architecture_larger_than_its_weights_is_refused_before_building(
    awkward_model_file, tmp_path, monkeypatch
):
    def change(metadata):
        metadata["estimator"]["steps"][1]["params"]["dense_units"] = 2**20

    path = with_metadata(awkward_model_file, tmp_path / "m.pneumoclf", change)
    monkeypatch.setattr(PneumoniaCNNClassifier, "new_network", _never_called)

    with pytest.raises(ModelFileError, match=r"describe a network of \d+ weights"):
        load_model(path)


def test_deflated_weights_that_would_expand_enormously_are_refused(
    awkward_model_file, tmp_path, monkeypatch
):
    monkeypatch.setattr(persistence._archive, "_MIN_CHECKED_EXPANSION_BYTES", 1024**2)
    members = read_members(awkward_model_file)
    metadata = json.loads(members["metadata.json"])
    metadata["estimator"]["steps"][1]["params"]["dense_units"] = 2**12

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for name, data in read_members(io.BytesIO(members["model.keras"])).items():
            if name != "model.weights.h5":
                archive.writestr(name, data)
        archive.writestr(
            "model.weights.h5", bytes(48 * 1024**2), compress_type=zipfile.ZIP_DEFLATED
        )
    metadata["model_sha256"] = hashlib.sha256(inner.getvalue()).hexdigest()
    members.update(
        {"metadata.json": json.dumps(metadata), "model.keras": inner.getvalue()}
    )
    path = write_members(tmp_path / "m.pneumoclf", members)
    monkeypatch.setattr(PneumoniaCNNClassifier, "new_network", _never_called)

    with pytest.raises(ModelFileError, match=r"model\.weights\.h5 would expand"):
        load_model(path)


def _never_called(*args, **kwargs):
    raise AssertionError("the network was built")


def test_an_enormous_loader_image_size_is_refused_before_building(
    awkward_model_file, tmp_path, monkeypatch
):
    def change(metadata):
        metadata["estimator"]["steps"][0]["params"]["image_size"] = 20000

    path = with_metadata(awkward_model_file, tmp_path / "m.pneumoclf", change)
    monkeypatch.setattr(PneumoniaCNNClassifier, "new_network", _never_called)

    with pytest.raises(ModelFileError, match=r"makes images of shape \(20000, 20000"):
        load_model(path)


def test_extra_network_members_cost_nothing_and_leave_nothing(
    awkward_model_file, held_out_files, tmp_path, monkeypatch
):
    def add_zeros(archive, members):
        for name, data in members.items():
            archive.writestr(name, data)
        with archive.open("assets/zeros", "w", force_zip64=True) as member:
            for _ in range(8):
                member.write(bytes(1024**2))

    path = _with_network(awkward_model_file, tmp_path / "m.pneumoclf", add_zeros)
    assert path.stat().st_size < 1024**2
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    loaded = load_model(path)

    np.testing.assert_array_equal(
        loaded.predict_proba(held_out_files[0]), held_out_files[1]
    )
    assert list(temporary.iterdir()) == []


def test_bzip2_network_members_are_refused_and_nothing_is_left(
    awkward_model_file, tmp_path, monkeypatch
):
    def add_bzip2(archive, members):
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("extra", bytes(1024**2), compress_type=zipfile.ZIP_BZIP2)

    path = _with_network(awkward_model_file, tmp_path / "m.pneumoclf", add_bzip2)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    with pytest.raises(ModelFileError, match=r"extra in model\.keras uses compression"):
        load_model(path)
    assert list(temporary.iterdir()) == []


def test_a_failed_load_of_the_weights_leaves_no_temporary_folder(
    awkward_model_file, tmp_path, monkeypatch
):
    def change(metadata):
        metadata["estimator"]["steps"][1]["params"]["filters"] = 5

    path = with_metadata(awkward_model_file, tmp_path / "m.pneumoclf", change)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    with pytest.raises(ModelFileError, match="weights do not fit the network"):
        load_model(path)
    assert list(temporary.iterdir()) == []


def _weights_with_extra_dataset(awkward_model_file, destination, add_dataset):
    def rewrite_weights(archive, members):
        weights = io.BytesIO(members["model.weights.h5"])
        with h5py.File(weights, "r+") as file:
            add_dataset(file)
        members["model.weights.h5"] = weights.getvalue()
        for name, data in members.items():
            archive.writestr(name, data)

    return _with_network(awkward_model_file, destination, rewrite_weights)


@pytest.mark.parametrize(
    ("add_dataset", "message"),
    [
        (lambda file: file.create_dataset(
            "extra", shape=(2**28,), dtype="float32", compression="gzip"),
         r"its arrays would expand to \d+ bytes"),
        (lambda file: file.create_dataset(
            "outside", shape=(4,), dtype="uint8", external=[("/etc/hostname", 0, 4)]),
         "outside stores its data in other files"),
        (lambda file: file.__setitem__(
            "linked", h5py.ExternalLink("/etc/other.h5", "/")),
         "linked is a link to elsewhere"),
    ],
    ids=["compressed-bomb", "external-storage", "external-link"],
)  # fmt: skip
def test_weights_that_expand_or_read_other_files_are_refused(
    awkward_model_file, tmp_path, add_dataset, message
):
    path = _weights_with_extra_dataset(
        awkward_model_file, tmp_path / "m.pneumoclf", add_dataset
    )

    with pytest.raises(ModelFileError, match=message) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


def test_weights_that_are_not_finite_are_refused(fitted, tmp_path):
    classifier = clone_fitted(fitted[0])
    weights = classifier.model_.get_weights()
    weights[0][...] = np.nan
    classifier.model_.set_weights(weights)
    path = tmp_path / "nan.pneumoclf"
    save_model(classifier, path)

    with pytest.raises(
        ModelFileError, match="weights that are missing or not finite"
    ) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


def clone_fitted(classifier):
    return pickle.loads(pickle.dumps(classifier))


# ---------------------------------------------------------------- parameters


def _set_param(step, name, value):
    def change(metadata):
        metadata["estimator"]["steps"][step]["params"][name] = value

    return change


def _set_pipeline_param(name, value):
    def change(metadata):
        metadata["estimator"]["params"][name] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_pipeline_param("memory", "/tmp/planted"),
         r"stores Pipeline's 'memory' as None, got '/tmp/planted'"),
        (_set_pipeline_param("steps", []), r"Pipeline has no parameters \['steps'\]"),
        (_set_param(1, "callbacks", []), r"'callbacks' as None, got \[\]"),
        (_set_param(1, "run_this", "os.system"),
         r"PneumoniaCNNClassifier has no parameters \['run_this'\]"),
        (_set_param(1, "filters", -3), r"'filters' parameter .* Got -3"),
        (_set_param(0, "n_jobs", 0), r"'n_jobs' parameter of ImageLoader"),
        (_set_param(0, "resize", "crop"), r"'resize' parameter of ImageLoader"),
    ],
    ids=["memory", "steps", "callbacks", "unknown", "negative-filters",
         "zero-jobs", "unknown-resize"],
)  # fmt: skip
def test_only_own_valid_parameters_are_restored(
    awkward_model_file, tmp_path, change, message
):
    path = with_metadata(awkward_model_file, tmp_path / "m.pneumoclf", change)

    assert str(path) in message_of_refused_load(path, message)


def test_a_pipeline_memory_folder_is_not_saved(awkward_pipeline, tmp_path):
    pipeline = clone_fitted(awkward_pipeline).set_params(memory=str(tmp_path))
    save_model(pipeline, tmp_path / "m.pneumoclf")

    assert load_model(tmp_path / "m.pneumoclf").memory is None


# ------------------------------------------------------------------- signing


@pytest.fixture(scope="module")
def signed_file(awkward_pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("signed") / "signed.pneumoclf"
    save_model(awkward_pipeline, path, key="correct horse battery staple")
    return path


@pytest.mark.parametrize(
    "key", ["correct horse battery staple", b"correct horse battery staple"]
)
def test_a_signed_file_loads_with_its_key(signed_file, held_out_files, key):
    loaded = load_model(signed_file, key=key)

    np.testing.assert_array_equal(
        loaded.predict_proba(held_out_files[0]), held_out_files[1]
    )


def test_a_signed_file_loads_without_a_key(signed_file, held_out_files):
    np.testing.assert_array_equal(
        load_model(signed_file).predict_proba(held_out_files[0]), held_out_files[1]
    )


def test_an_unsigned_file_is_refused_when_a_key_is_given(awkward_model_file):
    with pytest.raises(ModelFileError, match="is not signed, so it is refused"):
        load_model(awkward_model_file, key="correct horse battery staple")


def _recomputed_checksum(members):
    metadata = json.loads(members["metadata.json"])
    metadata["model_sha256"] = hashlib.sha256(members["model.keras"]).hexdigest()
    members["metadata.json"] = json.dumps(metadata)


def _replace_weights(signed_members, other_members):
    signed_members["model.keras"] = other_members["model.keras"]
    _recomputed_checksum(signed_members)


@pytest.mark.parametrize(
    "alter",
    [
        lambda members, other: members.update(
            {"metadata.json": members["metadata.json"].replace(b"0.5", b"0.6")}),
        _replace_weights,
        lambda members, other: members.update({"extra": b"planted"}),
        lambda members, other: members.pop("signature.hmac") and members.update(
            {"signature.hmac": b"0" * 64}),
    ],
    ids=["metadata", "weights-and-checksum", "added-member", "forged-signature"],
)  # fmt: skip
def test_an_altered_signed_file_is_refused(
    signed_file, awkward_model_file, tmp_path, alter
):
    members = read_members(signed_file)
    alter(members, read_members(awkward_model_file))
    path = write_members(tmp_path / "m.pneumoclf", members)

    with pytest.raises(ModelFileError, match="altered since it was signed") as raised:
        load_model(path, key="correct horse battery staple")
    assert str(path) in str(raised.value)


def test_a_file_signed_with_another_key_is_refused(signed_file):
    with pytest.raises(ModelFileError, match="or was signed with another key"):
        load_model(signed_file, key="wrong horse battery staple")


@pytest.mark.parametrize("key", ["", b"", 1234])
def test_an_empty_or_odd_key_is_refused(awkward_pipeline, tmp_path, key):
    with pytest.raises(TypeError, match="key must be a non-empty str or bytes"):
        save_model(awkward_pipeline, tmp_path / "m.pneumoclf", key=key)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["k", b"fifteen bytes!!"])
def test_a_short_key_is_refused(awkward_pipeline, tmp_path, key):
    with pytest.raises(ValueError, match="needs at least 16"):
        save_model(awkward_pipeline, tmp_path / "m.pneumoclf", key=key)
    assert list(tmp_path.iterdir()) == []


def test_weights_missing_for_a_layer_are_refused(awkward_model_file, tmp_path):
    path = _weights_with_extra_dataset(
        awkward_model_file,
        tmp_path / "m.pneumoclf",
        lambda file: file.__delitem__("layers/dense_1"),
    )

    with pytest.raises(ModelFileError, match="weights do not fit the network"):
        load_model(path)


@pytest.mark.slow
def test_a_global_average_head_round_trips(images, tmp_path):
    X, y = images
    clf = PneumoniaCNNClassifier(head="global_average", **SMALL).fit(X, y)
    path = tmp_path / "model.pneumoclf"
    save_model(clf, path)
    loaded = load_model(path)
    assert loaded.head == "global_average"
    _assert_same_classifier(loaded, clf, X)
