"""The same data, parameters and random_state give the same model everywhere."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from synthetic import blob_images

from pneumoclf import PneumoniaCNNClassifier

FIT_AND_PRINT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pneumoclf import PneumoniaCNNClassifier

    data = np.load(sys.argv[1])
    clf = PneumoniaCNNClassifier(epochs=3, batch_size=16, random_state=7)
    clf.fit(data["X"], data["y"])
    np.save(sys.argv[2], clf.predict_proba(data["X"]))
    """
)


@pytest.mark.slow
def test_another_process_gives_identical_probabilities(tmp_path):
    X, y = blob_images(60, 16, seed=3)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    output = tmp_path / "proba.npy"
    subprocess.run(
        [sys.executable, "-c", FIT_AND_PRINT, tmp_path / "data.npz", output],
        check=True,
        capture_output=True,
    )
    in_process = PneumoniaCNNClassifier(epochs=3, batch_size=16, random_state=7)
    in_process.fit(X, y)
    np.testing.assert_array_equal(in_process.predict_proba(X), np.load(output))


@pytest.mark.slow
def test_different_seeds_give_different_models():
    X, y = blob_images(60, 16, seed=3)
    probas = [
        PneumoniaCNNClassifier(epochs=1, random_state=seed).fit(X, y).predict_proba(X)
        for seed in (1, 2)
    ]
    assert not np.array_equal(*probas)


@pytest.mark.slow
def test_fitting_leaves_the_global_random_state_alone():
    X, y = blob_images(40, 16, seed=3)
    np.random.seed(123)  # noqa: NPY002
    expected = np.random.random_sample()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    PneumoniaCNNClassifier(epochs=1, random_state=0).fit(X, y)
    assert np.random.random_sample() == expected  # noqa: NPY002


@pytest.mark.slow
def test_fitting_seeds_no_global_generator_of_python_keras_or_tensorflow():
    import random

    import keras
    import tensorflow as tf

    X, y = blob_images(40, 16, seed=3)

    def draws():
        return (
            random.random(),
            float(keras.random.uniform(())),
            float(tf.random.uniform(())),
        )

    def seed_everything():
        keras.utils.set_random_seed(5)

    seed_everything()
    expected = draws()
    seed_everything()
    PneumoniaCNNClassifier(epochs=1, random_state=0).fit(X, y)
    assert draws() == expected
