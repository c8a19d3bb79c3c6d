"""The cells of the docs' comparison page that a test can check.

Each test is named after the row it verifies (docs/user_guide/comparison.rst):
what pneumoclf does, and what scikeras and ``keras.wrappers.SKLearnClassifier``
do, installed here as pneumoclf's own dependencies. skorch's cells cite its
source and docs instead: it needs PyTorch.
"""

import pickle

import keras
import pytest
from keras.wrappers import SKLearnClassifier
from scikeras.wrappers import KerasClassifier
from sklearn.base import clone, is_classifier

from pneumoclf import PneumoniaCNNClassifier


def _network():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile("adam", "binary_crossentropy")
    return model


@pytest.fixture
def scikeras():
    return KerasClassifier(model=_network, loss="binary_crossentropy", verbose=0)


@pytest.fixture
def keras_wrapper():
    return SKLearnClassifier(
        model=lambda X, y: _network(), fit_kwargs={"epochs": 3, "verbose": 0}
    )


def test_row_is_a_classifier_to_scikit_learn(scikeras, keras_wrapper):
    assert is_classifier(PneumoniaCNNClassifier())
    assert is_classifier(keras_wrapper)
    # The trap the package's design works around: a cv=5 search is then not
    # stratified and scoring="roc_auc" scores NaN.
    assert not is_classifier(scikeras)


def test_row_reads_image_files_in_a_pipeline(awkward_pipeline, image_files):
    paths, _ = image_files
    assert awkward_pipeline.predict_proba(paths[:2]).shape == (2, 2)
    # Neither wrapper ships a transformer that reads files.
    import scikeras

    for module in (scikeras, keras.wrappers):
        assert not [name for name in dir(module) if "Loader" in name]


def test_row_decision_threshold_is_a_parameter(scikeras, keras_wrapper):
    params = PneumoniaCNNClassifier().get_params()
    assert params["threshold"] == 0.5 and params["target_recall"] is None
    assert "threshold" not in scikeras.get_params()
    assert "threshold" not in keras_wrapper.get_params()


def test_row_clone_keeps_every_setting(scikeras, keras_wrapper):
    cnn = PneumoniaCNNClassifier(epochs=7, threshold="auto", warm_start=True)
    assert clone(cnn).get_params() == cnn.get_params()
    scikeras.set_params(epochs=7)
    assert clone(scikeras).get_params()["epochs"] == 7
    # Keras' wrapper loses its fit_kwargs (the epochs among them) on clone.
    assert keras_wrapper.fit_kwargs == {"epochs": 3, "verbose": 0}
    assert clone(keras_wrapper).fit_kwargs is None


def test_row_warm_start_and_partial_fit(scikeras, keras_wrapper):
    for estimator in (PneumoniaCNNClassifier(), scikeras):
        assert "warm_start" in estimator.get_params()
        assert callable(estimator.partial_fit)
    assert "warm_start" in keras_wrapper.get_params()
    assert not hasattr(keras_wrapper, "partial_fit")


def test_row_patient_grouped_inner_validation_split(scikeras, keras_wrapper):
    # pneumoclf: fit(groups=...); its effect is tested in test_training.py and
    # test_classifier.py. scikeras hands validation_split to Keras, which holds
    # out the last samples: a share, never a grouping.
    import inspect

    assert "groups" in inspect.signature(PneumoniaCNNClassifier.fit).parameters
    assert "validation_split" in scikeras.get_params()
    assert "groups" not in inspect.signature(scikeras.fit).parameters
    assert "groups" not in inspect.signature(keras_wrapper.fit).parameters


def test_row_model_file_without_unpickling(awkward_pipeline, tmp_path, monkeypatch):
    from pneumoclf.persistence import load_model, save_model

    save_model(awkward_pipeline, tmp_path / "model.pneumoclf")

    def refuse(*args, **kwargs):
        raise AssertionError("load_model unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    assert load_model(tmp_path / "model.pneumoclf") is not None
    # The wrappers have no file format of their own: pickle is their route.
    for wrapper in (KerasClassifier, SKLearnClassifier):
        assert not [name for name in dir(wrapper) if "save" in name.lower()]


def test_row_saliency_maps():
    from pneumoclf import explain

    assert explain.METHODS == ("integrated_gradients", "gradcam", "occlusion")
    assert callable(explain.heatmaps) and callable(explain.save_overlays)
    import scikeras

    for module in (scikeras, keras.wrappers):
        names = " ".join(dir(module)).lower()
        assert "cam" not in names and "saliency" not in names
