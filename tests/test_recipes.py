"""The recipe pneumoclf train ships, as the library builds it."""

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from pneumoclf import ImageLoader, PneumoniaCNNClassifier
from pneumoclf.recipes import (
    DROPOUT,
    IMAGE_SIZE,
    TARGET_RECALL,
    image_file_pipeline,
    make_pipeline,
    recipe_params,
)


def test_the_recipe_sets_what_it_lists_on_top_of_the_defaults():
    pipe = make_pipeline()
    params = pipe.get_params()
    for name, value in recipe_params().items():
        assert params[name] == value, name
    defaults = PneumoniaCNNClassifier().get_params()
    changed = {
        name
        for name, value in pipe.named_steps["cnn"].get_params().items()
        if value != defaults[name]
    }
    assert changed == {
        "threshold", "target_recall", "dropout", "calibration", "zoom", "shift",
        "contrast", "head",
    }  # fmt: skip
    assert pipe.named_steps["cnn"].target_recall == TARGET_RECALL
    assert pipe.named_steps["cnn"].dropout == DROPOUT
    assert pipe.named_steps["load"].image_size == IMAGE_SIZE


def test_overrides_win_and_leave_the_rest_of_the_recipe():
    pipe = make_pipeline(cnn__dropout=0.0, load__image_size=96, cnn__random_state=3)
    assert pipe.named_steps["cnn"].dropout == 0.0
    assert pipe.named_steps["cnn"].random_state == 3
    assert pipe.named_steps["load"].image_size == 96
    assert pipe.named_steps["cnn"].target_recall == TARGET_RECALL


def test_each_call_builds_new_estimators():
    first, second = make_pipeline(), make_pipeline()
    assert first.named_steps["cnn"] is not second.named_steps["cnn"]


def test_an_unknown_override_is_named():
    with pytest.raises(ValueError, match="nonsense"):
        make_pipeline(cnn__nonsense=1)


def test_a_classifier_gets_a_loader_of_its_image_size(awkward_classifier):
    pipe = image_file_pipeline(awkward_classifier)
    assert isinstance(pipe, Pipeline)
    assert pipe.named_steps["cnn"] is awkward_classifier
    loader = pipe.named_steps["load"]
    assert isinstance(loader, ImageLoader)
    assert loader.image_size == awkward_classifier.image_shape_[:2]


def test_a_pipeline_is_returned_as_it_is(awkward_pipeline):
    assert image_file_pipeline(awkward_pipeline) is awkward_pipeline


def test_a_classifier_of_colour_images_is_refused():
    rng = np.random.default_rng(0)
    X = rng.random((12, 8, 8, 3)).astype(np.float32)
    clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0)
    clf.fit(X, np.array([0, 1] * 6))
    with pytest.raises(ValueError, match="images of 3 channels"):
        image_file_pipeline(clf)
