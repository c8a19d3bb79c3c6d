"""Shared fixtures: small synthetic chest X-ray-like images, and one fitted pipeline.

Every test that only needs *a* fitted model uses ``awkward_pipeline`` (or its
classifier), trained once per session: each fit costs seconds of TensorFlow set-up.
"""

import contextlib
import io
import os
import shutil
from pathlib import Path

# Each pytest-xdist worker runs TensorFlow and BLAS on one thread, so that the
# workers share the machine's cores instead of each taking all of them.
if "PYTEST_XDIST_WORKER" in os.environ:
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                     "OMP_NUM_THREADS"):  # fmt: skip
        os.environ.setdefault(variable, "1")

import numpy as np
import pytest
from awkward import AWKWARD_FOLDER, SIDE, SMALL_CNN, save_image
from browser import CHROMIUM_VARIABLE, find_chromium
from PIL import Image
from sklearn.pipeline import Pipeline
from synthetic import blob_images, write_images, write_split

from pneumoclf.cli import main


@pytest.fixture(scope="session")
def chromium():
    """The Chromium executable of the browser tests (tests/browser.py)."""
    executable = find_chromium()
    if os.environ.get(CHROMIUM_VARIABLE) and not shutil.which(executable):
        pytest.fail(f"{CHROMIUM_VARIABLE}={executable} is not an executable.")
    if executable is None:
        reason = f"no Chromium on PATH and no {CHROMIUM_VARIABLE}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide one (Debian's chromium).")
        pytest.skip(reason)
    return executable


@pytest.fixture(scope="session")
def image_files(tmp_path_factory):
    """48 image files (24 per class), 16x16, and their 0/1 labels."""
    X, y = blob_images(48, 16, seed=1)
    paths = write_images(tmp_path_factory.mktemp("xrays"), X, y)
    return np.array(paths), y


@pytest.fixture(scope="session")
def awkward_root(tmp_path_factory):
    """A chest_xray/train folder whose every path holds awkward characters."""
    root = tmp_path_factory.mktemp("data") / AWKWARD_FOLDER
    X, y = blob_images(32, SIDE, seed=0)
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        paths = write_images(root / "train" / name, X[y == label], y[y == label])
        for path in paths[::2]:
            Path(path).rename(Path(path).with_name(f"scan é 中 😀 {Path(path).name}"))
    return root


@pytest.fixture(scope="session")
def awkward_pipeline(awkward_root):
    """A small pipeline fitted on the awkward folder: *a* fitted model."""
    from pneumoclf import ImageLoader, PneumoniaCNNClassifier
    from pneumoclf.datasets import load_chest_xray

    data = load_chest_xray(awkward_root)
    return Pipeline(
        [
            ("load", ImageLoader(image_size=SIDE)),
            ("cnn", PneumoniaCNNClassifier(**SMALL_CNN)),
        ]
    ).fit(data.paths, data.target)


@pytest.fixture(scope="session")
def awkward_classifier(awkward_pipeline):
    return awkward_pipeline[-1]


@pytest.fixture(scope="session")
def held_out_gray():
    """Eight 8-bit grayscale pictures the pipeline never saw, both classes."""
    X, _ = blob_images(8, SIDE, seed=5)
    return np.round(X * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def held_out_images(held_out_gray):
    """The held-out pictures scaled to [0, 1], as the classifier takes them."""
    return (held_out_gray / 255).astype(np.float32)


@pytest.fixture(scope="session")
def held_out_files(held_out_gray, tmp_path_factory, awkward_pipeline):
    """The held-out pictures as 8-bit grayscale PNGs and the pipeline's output."""
    folder = tmp_path_factory.mktemp("reference")
    paths = [save_image(Image.fromarray(gray), folder / f"{i}.png")
             for i, gray in enumerate(held_out_gray)]  # fmt: skip
    return paths, awkward_pipeline.predict_proba(paths)


@pytest.fixture(scope="session")
def onnx_file(awkward_pipeline, tmp_path_factory):
    """The fitted pipeline exported with ``export_onnx`` (needs the onnx extra)."""
    pytest.importorskip("tf2onnx")
    from pneumoclf.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(awkward_pipeline, path)
    return path


@pytest.fixture(scope="session")
def awkward_model_file(awkward_pipeline, tmp_path_factory):
    """The fitted pipeline saved with ``save_model``."""
    from pneumoclf.persistence import save_model

    path = tmp_path_factory.mktemp("model") / "model.pneumoclf"
    save_model(awkward_pipeline, path)
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A chest_xray-like folder: train and val splits of 16x16 JPEGs."""
    root = tmp_path_factory.mktemp("chest_xray")
    write_split(root / "train", 20, seed=0)
    write_split(root / "val", 4, seed=1)
    return root


@pytest.fixture(scope="session")
def trained(data_dir, tmp_path_factory):
    """The model file written by ``pneumoclf train`` (default seed) and its output."""
    model = tmp_path_factory.mktemp("models") / "model.pneumoclf"
    stdout = io.StringIO()
    argv = ["train", data_dir, "-o", model, "--epochs", 1, "--image-size", 16,
            "--batch-size", 16]  # fmt: skip
    with contextlib.redirect_stdout(stdout):
        status = main([str(arg) for arg in argv])
    return status, model, stdout.getvalue()


@contextlib.contextmanager
def _networks_run_eagerly():
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def eager_networks():
    """Run the networks eagerly, for modules that test a contract, not TensorFlow.

    Tracing a new network's training graph takes about a second, most of a
    small fit's time; graph execution is what the other test modules run.
    """
    with _networks_run_eagerly():
        yield


@pytest.fixture
def eager():
    """``eager_networks`` for one test of a module that otherwise runs graphs."""
    with _networks_run_eagerly():
        yield


@pytest.fixture(scope="session", autouse=True)
def optuna_logs_to_the_session_stream():
    """Give Optuna its log handler before any test captures stderr.

    Optuna binds its handler to whatever ``sys.stderr`` is when it first logs; a
    test's ``capsys`` stream closes with the test, and every later Optuna message
    would then fail to print, with a traceback, in whichever test comes next.
    """
    try:
        import optuna
    except ImportError:
        return
    optuna.logging.get_verbosity()
