"""The prediction-only distribution, distributions/pneumoclf-onnx, installed fresh."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from pneumoclf.export import OnnxPneumoniaModel

LIGHT = Path(__file__).resolve().parents[1] / "distributions" / "pneumoclf-onnx"
MAX_MIB = 500

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def light_env(tmp_path_factory):
    """A fresh virtual environment with the distribution installed as documented."""
    folder = tmp_path_factory.mktemp("light") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run(
        [str(folder / "bin" / "pip"), "install", "--quiet", str(LIGHT)], check=True
    )
    return folder


def _python(env, code):
    command = [str(env / "bin" / "python"), "-c", code]
    return subprocess.run(command, capture_output=True, text=True)


def test_it_has_no_tensorflow_nor_scikit_learn_and_is_small(light_env):
    for module in ("tensorflow", "keras", "sklearn"):
        run = _python(light_env, f"import {module}")
        assert f"No module named '{module}'" in run.stderr, module
    files = [path for path in light_env.rglob("*") if path.is_file()]
    mib = sum(path.stat().st_size for path in files if not path.is_symlink()) / 2**20
    assert mib < MAX_MIB


def test_it_predicts_what_the_full_installation_predicts(
    light_env, onnx_file, held_out_files
):
    model = onnx_file
    paths = [str(path) for path in held_out_files[0][:6]]

    command = [str(light_env / "bin" / "pneumoclf"), "predict", str(model), "--json"]
    run = subprocess.run([*command, *paths], capture_output=True, text=True)

    assert run.returncode in (0, 4), run.stderr  # 4: some inputs refused
    rows = json.loads(run.stdout)
    assert [row["path"] for row in rows] == paths
    expected = OnnxPneumoniaModel(model).predict_proba(paths)[:, 1]
    checks = OnnxPneumoniaModel(model).check_inputs(paths)
    for row, probability, check in zip(rows, expected, checks, strict=True):
        assert row["input_check"] == check
        if check == "ok":
            assert row["pneumonia_probability"] == pytest.approx(probability, abs=1e-5)


def test_training_says_it_needs_the_full_package(light_env, tmp_path):
    command = [str(light_env / "bin" / "pneumoclf"), "train", str(tmp_path)]
    run = subprocess.run([*command, "-o", str(tmp_path / "m.pneumoclf")],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 1
    assert "needs tensorflow, which is not installed here" in run.stderr
    assert "pip install pneumoclf" in run.stderr
    assert "Traceback" not in run.stderr
