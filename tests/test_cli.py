import builtins
import collections
import contextlib
import csv
import functools
import html
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from awkward import (
    AWKWARD_MODEL_NAME,
    PNG_SIGNATURE,
    SIDE,
    dangling_symlink,
    decompression_bomb,
    not_root,
    save_image,
)
from PIL import Image
from synthetic import write_split

import pneumoclf
from pneumoclf import ImageLoader
from pneumoclf.cli import _commands, main
from pneumoclf.datasets import patient_id
from pneumoclf.metrics import (
    clinical_report,
)
from pneumoclf.persistence import load_model
from pneumoclf.recipes import DROPOUT, TARGET_RECALL

REPORT_KEYS = {"roc_auc", "recall", "specificity", "precision", "f2", "threshold"}
COUNT_KEYS = {"tp", "fp", "tn", "fn"}


def _an_x_ray(data_dir, model):
    """The first validation image that ``model``'s input check lets pass."""
    return Path(_first_passing(str(data_dir), str(model)))


@functools.cache
def _first_passing(data_dir, model, pattern="val/*/*.jpeg"):
    pipeline = load_model(model)
    paths = sorted(str(path) for path in Path(data_dir).glob(pattern))
    checks = pipeline[-1].check_inputs(pipeline[0].transform(paths))
    return next(
        path for path, check in zip(paths, checks, strict=True) if check == "ok"
    )


def _image_paths(data_dir):
    return sorted(str(path) for path in data_dir.glob("val/*/*.jpeg"))


def _run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


# ------------------------------------------------------------------------ train


def test_train_saves_a_model_and_shows_progress(trained, data_dir):
    status, model, stdout = trained
    assert status == 0
    assert "Training on 48 images (24 NORMAL, 24 PNEUMONIA)" in stdout
    assert " - loss: " in stdout and " - val_auc: " in stdout  # the epoch's line
    assert f"Saved the model to {model}" in stdout
    assert "On the validation part (" in stdout and "95% CI" in stdout
    card = model.with_name("model.card.md")
    assert f"its model card to {card}" in stdout
    assert sorted(path.name for path in model.parent.iterdir()) == [
        card.name,
        model.name,
    ]
    pipeline = load_model(model)
    classifier = pipeline[-1]
    assert classifier.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    assert classifier.random_state == 0  # the default seed, recorded
    assert "Seed (`random_state`): 0." in card.read_text(encoding="utf-8")
    assert classifier.threshold == "auto"
    assert classifier.target_recall == TARGET_RECALL
    assert classifier.dropout == DROPOUT
    assert classifier.image_shape_ == (16, 16, 1)
    assert classifier.n_epochs_ == 1
    assert classifier.verbose == 2
    assert pipeline[0].image_size == 16


@pytest.mark.slow
def test_train_quiet_prints_nothing(data_dir, tmp_path, capsys):
    status, out, _ = _run(
        capsys, "train", data_dir / "val", "-o", tmp_path / "m.pneumoclf",
        "--epochs", "1", "--image-size", "8", "--threshold", "0.4", "--quiet",
    )  # fmt: skip
    assert status == 0
    assert out == ""
    assert load_model(tmp_path / "m.pneumoclf")[-1].decision_threshold() == 0.4


# --------------------------------------------------------------------- evaluate


def test_evaluate_json_matches_the_library(trained, data_dir, capsys):
    _, model, _ = trained
    status, out, _ = _run(
        capsys, "evaluate", model, data_dir, "--json", "--skip-input-check"
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["input_check"] == "skipped"
    assert REPORT_KEYS | COUNT_KEYS <= summary.keys()
    assert all(type(summary[key]) is int for key in COUNT_KEYS)
    assert sum(summary[key] for key in COUNT_KEYS) == 48

    pipeline = load_model(model)
    paths = sorted(data_dir.glob("*/*/*.jpeg"))
    y = [int(path.parent.name == "PNEUMONIA") for path in paths]
    scores = pipeline.predict_proba([str(path) for path in paths])[:, 1]
    expected = clinical_report(
        y, scores, pipeline[-1].decision_threshold(), confidence=0.95,
        groups=[patient_id(path) for path in paths], random_state=0,
    )  # fmt: skip
    intervals = expected.pop("intervals")
    assert {key: summary[key] for key in expected} == pytest.approx(expected)
    assert summary["intervals"].keys() == intervals.keys()
    for name, (low, high) in intervals.items():
        assert summary["intervals"][name] == pytest.approx([low, high]), name


def test_evaluate_prints_the_table(trained, data_dir, capsys):
    _, model, _ = trained
    status, out, _ = _run(capsys, "evaluate", model, data_dir, "--skip-input-check")
    assert status == 0
    assert "(input check: skipped)" in out
    for label in ("ROC AUC", "Recall", "Specificity", "F2", "Confusion matrix"):
        assert label in out
    assert "95% CI" in out


def test_evaluate_writes_the_report_page(trained, data_dir, tmp_path, capsys):
    from pneumoclf.persistence import read_model_card
    from pneumoclf.plotting import FIGURE_NAMES

    _, model, _ = trained
    report_dir = tmp_path / "report"
    status, out, _ = _run(
        capsys, "evaluate", model, data_dir, "--report-dir", report_dir,
        "--skip-input-check",
    )  # fmt: skip
    assert status == 0
    assert f"Report written to {report_dir / 'index.html'}" in out
    assert sorted(path.name for path in report_dir.iterdir()) == sorted(
        [*FIGURE_NAMES, "index.html"]
    )
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == len(FIGURE_NAMES)
    assert "<h2>Intended use</h2>" in page  # the card of the model file
    assert "Intended use" in read_model_card(model)
    errors = {
        kind: int(re.search(rf"False {kind}s +(\d+)", out).group(1))
        for kind in ("positive", "negative")
    }
    worst = re.findall(r"<code>(.*?)</code></td></tr>", page)
    assert len(worst) == sum(min(4, count) for count in errors.values())
    assert all(Path(html.unescape(name)).is_file() for name in worst)
    for name in FIGURE_NAMES:
        assert (report_dir / name).read_bytes().startswith(PNG_SIGNATURE)
        with Image.open(report_dir / name) as image:
            assert image.format == "PNG"
            assert min(image.size) > 100


VALIDATION = {"n_images": 200, "n_pneumonia": 50, "n_patients": 120, "threshold": 0.3,
              "recall": 0.96, "specificity": 0.4667, "roc_auc": 0.91}  # fmt: skip


def test_train_states_the_validation_figures_with_their_intervals():
    text = _commands._describe_validation(VALIDATION)
    assert text.startswith(
        "On the validation part (200 images of 120 patients) at threshold 0.3000: "
        "recall 96.0% (95% CI 86.5% to 98.9%, n=50), specificity 46.7% (95% CI"
    )
    assert "No validation part" in _commands._describe_validation(None)


def test_train_warns_when_the_validation_specificity_is_low():
    with pytest.warns(UserWarning, match="specificity is 46.7%: 80 of its 150 normal"):
        _commands._warn_if_low_specificity(VALIDATION)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _commands._warn_if_low_specificity({**VALIDATION, "specificity": 0.8})


def test_info_prints_the_model_card_train_wrote(trained, capsys):
    _, model, _ = trained
    status, out, _ = _run(capsys, "info", model)
    assert status == 0
    assert out == model.with_name("model.card.md").read_text(encoding="utf-8")
    assert out.startswith("# Model card")
    assert "(folders: `train`, `val`): NORMAL 24 images of 20 patients" in out


def _modules_loaded_by(*argv):
    """Status, and which heavy modules a fresh process imported to run ``argv``."""
    script = (
        "import sys; from pneumoclf.cli import main; "
        f"status = main({[str(arg) for arg in argv]!r}); "
        "print(sorted({name.partition('.')[0] for name in sys.modules} & "
        "{'tensorflow', 'keras', 'sklearn', 'scipy'})); sys.exit(status)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    return run.returncode, run.stdout.splitlines()[-1], run.stderr


def test_info_loads_no_tensorflow_nor_scikit_learn(trained):
    _, model, _ = trained
    status, loaded, err = _modules_loaded_by("info", model)
    assert status == 0, err
    assert loaded == "[]"


def test_info_on_a_model_without_a_card_says_so(awkward_pipeline, tmp_path, capsys):
    from pneumoclf.persistence import save_model

    model = tmp_path / "bare.pneumoclf"
    save_model(awkward_pipeline, model)
    status, out, _ = _run(capsys, "info", model)
    assert status == 0
    assert out == (
        f"{model} carries no model card: it was saved without one ('pneumoclf "
        "train' writes one).\n"
    )


def test_info_shows_control_characters_of_a_card_as_escapes(
    awkward_pipeline, tmp_path, capsys
):
    from pneumoclf.persistence import save_model

    model = tmp_path / "odd.pneumoclf"
    card = "# Card\n\x1b]0;retitled\x07\x1b[31mred\x1b[0m\tkept\r\n\x9b2J\n"
    save_model(awkward_pipeline, model, model_card=card)
    status, out, _ = _run(capsys, "info", model)
    assert status == 0
    assert out == (
        "# Card\n\\x1b]0;retitled\\x07\\x1b[31mred\\x1b[0m\tkept\\x0d\n\\x9b2J\n"
    )


def test_info_refuses_a_file_that_is_no_model(tmp_path, capsys):
    path = tmp_path / "notes.pneumoclf"
    path.write_text("hello")
    status, _, err = _run(capsys, "info", path)
    assert status == 1
    assert f"{path} is not a pneumoclf model file" in err


def test_evaluate_without_matplotlib(trained, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status, _, err = _run(
        capsys, "evaluate", trained[1], data_dir, "--report-dir", tmp_path / "r"
    )
    assert status == 1
    assert 'pip install "pneumoclf[plot]"' in err
    assert not (tmp_path / "r").exists()


def test_interrupted_figure_leaves_no_file(
    trained, data_dir, tmp_path, capsys, monkeypatch
):
    from matplotlib.figure import Figure

    def write_then_interrupt(self, file, **kwargs):
        file.write(PNG_SIGNATURE)
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", write_then_interrupt)
    status, _, err = _run(
        capsys, "evaluate", trained[1], data_dir, "--report-dir", tmp_path
    )
    assert status == 130
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- predict


def test_predict_csv(trained, data_dir, capsys):
    _, model, _ = trained
    paths = _image_paths(data_dir)
    status, out, _ = _run(capsys, "predict", model, *paths)
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["path"] for row in rows] == paths
    pipeline = load_model(model)
    probabilities = np.array([float(row["pneumonia_probability"]) for row in rows])
    np.testing.assert_array_equal(probabilities, pipeline.predict_proba(paths)[:, 1])
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    expected = np.where(
        probabilities >= pipeline[-1].decision_threshold(), "PNEUMONIA", "NORMAL"
    )
    assert [row["label"] for row in rows] == expected.tolist()


def test_predict_refuses_to_replace_a_pipe_given_as_output(
    trained, data_dir, tmp_path, capsys
):
    pipe = tmp_path / "out.csv"
    os.mkfifo(pipe)
    status, _, err = _run(capsys, "predict", trained[1], _image_paths(data_dir)[0],
                          "-o", pipe)  # fmt: skip
    assert status == 1
    assert f"{pipe}: Not a regular file" in err
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_predict_reads_and_scores_in_parts_with_the_same_rows(
    trained, data_dir, tmp_path, capsys, monkeypatch
):
    paths = _image_paths(data_dir)[:7]
    broken = [tmp_path / "broken_1.jpeg", tmp_path / "broken_2.jpeg"]
    for path in broken:
        path.write_bytes(b"not an image")
    files = [paths[0], broken[0], *paths[1:5], broken[1], *paths[5:]]
    skip = ("--on-error", "skip", "--json")
    _, whole, _ = _run(capsys, "predict", trained[1], *files, *skip)

    seen = []
    transform = ImageLoader.transform
    monkeypatch.setattr(_commands, "FILES_AT_ONCE", 3)
    monkeypatch.setattr(
        ImageLoader,
        "transform",
        lambda self, X: seen.append(len(X)) or transform(self, X),
    )
    status, parts, err = _run(capsys, "predict", trained[1], *files, *skip)
    assert status == 3
    assert json.loads(parts) == json.loads(whole)
    assert max(seen) <= 3
    assert err.count("skipped") == 2
    status, _, err = _run(capsys, "predict", trained[1], *files)
    assert status == 1  # both named, though they lie in different parts
    assert str(broken[0]) in err and str(broken[1]) in err


def test_file_names_reach_the_terminal_without_their_escape_sequences(
    trained, data_dir, tmp_path, capsys
):
    hostile = tmp_path / "\x1b]0;retitled\x07\x1b[2J.jpeg"
    hostile.write_bytes(b"not an image")
    image = _image_paths(data_dir)[0]
    for options in ([], ["--on-error", "skip"]):
        _, _, err = _run(capsys, "predict", trained[1], image, hostile, *options)
        assert "\x1b" not in err and "\x07" not in err
        assert "\\x1b]0;retitled\\x07\\x1b[2J.jpeg" in err


def test_predict_json_to_a_file(trained, data_dir, tmp_path, capsys):
    _, model, _ = trained
    paths = _image_paths(data_dir)[:3]
    output = tmp_path / "predictions.json"
    status, out, _ = _run(capsys, "predict", model, *paths, "--json", "-o", output)
    assert status == 0
    assert list(tmp_path.iterdir()) == [output]
    rows = json.loads(output.read_text())
    assert [row["path"] for row in rows] == paths
    assert {row["label"] for row in rows} <= {"NORMAL", "PNEUMONIA"}
    counts = collections.Counter(row["label"] for row in rows)
    listed = ", ".join(f"{counts[label]} {label}" for label in sorted(counts))
    assert out == f"Wrote 3 rows ({listed}) to {output}.\n"


@pytest.fixture
def undecodable_image(data_dir, tmp_path):
    """A copy of an image under a name that is not valid UTF-8, as bytes."""
    name = os.fsencode(tmp_path / "scans") + b"/caf\xe9.jpeg"
    os.mkdir(os.path.dirname(name))
    try:
        with open(name, "wb") as file:
            file.write(Path(_image_paths(data_dir)[0]).read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this file system takes only valid UTF-8 file names")
    return name


def test_predict_writes_undecodable_file_names_as_their_bytes(
    trained, undecodable_image, tmp_path, capsysbinary
):
    _, model, _ = trained
    path = os.fsdecode(undecodable_image)
    status = main(["predict", str(model), path])
    out, err = capsysbinary.readouterr()
    assert status == 0, err
    assert out.splitlines()[1].startswith(undecodable_image + b",")
    output = tmp_path / "predictions.csv"
    assert main(["predict", str(model), path, "-o", str(output)]) == 0
    assert output.read_bytes() == out


def test_predict_takes_folders_and_writes_a_table(trained, data_dir, capsys):
    _, model, _ = trained
    folder_paths = sorted(str(path) for path in (data_dir / "val").rglob("*.jpeg"))
    status, out, _ = _run(capsys, "predict", model, data_dir / "val", "--table")
    pipeline = load_model(model)
    checks = pipeline[-1].check_inputs(pipeline[0].transform(folder_paths))
    assert status == (0 if all(checks == "ok") else 4)
    header, *lines = out.splitlines()
    assert header.split() == ["path", "pneumonia_probability", "label", "input_check"]
    assert [line.split()[0] for line in lines] == folder_paths
    probabilities = pipeline.predict_proba(folder_paths)[:, 1]
    shown = [line.split()[1] for line in lines]
    expected = [
        f"{p:.4f}" if c == "ok" else "-"
        for p, c in zip(probabilities, checks, strict=True)
    ]
    assert shown == expected
    assert [line.split(maxsplit=3)[3] for line in lines] == list(checks)


def test_predict_refuses_a_folder_without_images(trained, tmp_path, capsys):
    _, model, _ = trained
    (tmp_path / "notes.txt").write_text("no image here")
    status, _, err = _run(capsys, "predict", model, tmp_path)
    assert status == 1
    assert f"The folder {tmp_path} holds no image files" in err


@pytest.fixture
def with_unreadable(data_dir, tmp_path):
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(b"\xff\xd8 not really a JPEG")
    missing = tmp_path / "missing.png"
    return [*_image_paths(data_dir)[:2], str(broken), str(missing)]


def test_on_error_stop_names_every_unreadable_file(trained, with_unreadable, capsys):
    _, model, _ = trained
    status, out, err = _run(capsys, "predict", model, *with_unreadable)
    assert status == 1 and out == ""
    assert "2 of 4 images could not be read" in err
    assert "broken.jpeg" in err and "missing.png: file not found" in err


def test_on_error_skip_predicts_the_rest_with_its_own_status(
    trained, with_unreadable, capsys
):
    _, model, _ = trained
    status, out, err = _run(
        capsys, "predict", model, *with_unreadable, "--on-error", "skip"
    )
    assert status == 3
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["path"] for row in rows] == with_unreadable[:2]
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert len(skipped) == 2
    assert skipped[1].endswith("missing.png: file not found")


def test_explain_skips_unreadable_files_and_takes_folders(
    trained, data_dir, with_unreadable, tmp_path, capsys
):
    _, model, _ = trained
    out_dir = tmp_path / "overlays"
    status, out, err = _run(
        capsys, "explain", model, *with_unreadable, data_dir / "val" / "NORMAL",
        "--out", out_dir, "--on-error", "skip",
    )  # fmt: skip
    assert status == 3
    normal = sorted((data_dir / "val" / "NORMAL").glob("*.jpeg"))
    assert len(out.split()) == 2 + len(normal)
    assert err.count("skipped") == 2


# ----------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def onnx_export(trained, tmp_path_factory):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    _, model, _ = trained
    output = tmp_path_factory.mktemp("onnx") / "model.onnx"
    status = main(["export", str(model), "-o", str(output)])
    assert status == 0
    return output


def test_predict_from_the_onnx_export_matches_the_model(
    trained, onnx_export, data_dir, capsys
):
    _, model, _ = trained
    paths = _image_paths(data_dir)
    _, from_model, _ = _run(capsys, "predict", model, *paths)
    status, from_export, _ = _run(capsys, "predict", onnx_export, *paths)
    assert status == 0
    exported = list(csv.DictReader(io.StringIO(from_export)))
    original = list(csv.DictReader(io.StringIO(from_model)))
    assert [row["label"] for row in exported] == [row["label"] for row in original]
    np.testing.assert_allclose(
        [float(row["pneumonia_probability"]) for row in exported],
        [float(row["pneumonia_probability"]) for row in original],
        atol=1e-5,
    )


def test_predict_from_onnx_loads_no_tensorflow_nor_scikit_learn(onnx_export, data_dir):
    image = _image_paths(data_dir)[0]
    status, loaded, err = _modules_loaded_by("predict", onnx_export, image)
    assert status == 0, err
    assert loaded == "[]"


def test_evaluate_from_the_onnx_export_matches_the_model(
    trained, onnx_export, data_dir, capsys
):
    _, model, _ = trained
    options = ("--json", "--skip-input-check")
    _, from_model, _ = _run(capsys, "evaluate", model, data_dir, *options)
    status, from_export, _ = _run(capsys, "evaluate", onnx_export, data_dir, *options)
    assert status == 0
    exported, original = json.loads(from_export), json.loads(from_model)
    assert exported.keys() == original.keys()
    for key in COUNT_KEYS:
        assert exported[key] == original[key], key
    assert exported["roc_auc"] == pytest.approx(original["roc_auc"], abs=1e-4)


def test_a_command_that_needs_the_full_package_says_how_to_get_it(data_dir):
    script = (
        "import sys; sys.modules['tensorflow'] = None; "
        "from pneumoclf.cli import main; "
        f"sys.exit(main(['train', {str(data_dir)!r}, '-o', 'never.pneumoclf']))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 1
    assert "pneumoclf train needs tensorflow, which is not installed" in run.stderr
    assert "pip install pneumoclf" in run.stderr
    assert "Traceback" not in run.stderr


def test_an_onnx_export_is_refused_where_it_cannot_serve(
    onnx_export, data_dir, tmp_path, capsys, monkeypatch
):
    image = _image_paths(data_dir)[0]
    status, _, err = _run(capsys, "explain", onnx_export, image, "--out", tmp_path)
    assert status == 1 and "holds no gradients" in err
    monkeypatch.setenv("PNEUMOCLF_MODEL_KEY", "a secret of some length")
    status, _, err = _run(capsys, "predict", onnx_export, image)
    assert status == 1 and "carries no signature" in err


# ---------------------------------------------------------------------- explain


def test_explain_writes_one_overlay_per_file(trained, data_dir, tmp_path, capsys):
    _, model, _ = trained
    paths = _image_paths(data_dir)[:3]
    out_dir = tmp_path / "overlays"
    status, out, _ = _run(capsys, "explain", model, *paths, "--out", out_dir)
    assert status == 0
    written = out.split()
    assert written == [
        str(out_dir / f"{Path(p).stem}_integrated_gradients.png") for p in paths
    ]
    for path in written:
        assert Path(path).read_bytes().startswith(PNG_SIGNATURE)
        # The picture at full size, with a colour bar beside it and a title.
        width, height = Image.open(paths[0]).size
        assert Image.open(path).width > width and Image.open(path).height > height


def test_explain_refuses_an_unknown_layer(trained, data_dir, tmp_path, capsys):
    _, model, _ = trained
    paths = _image_paths(data_dir)[:1]
    status, _, err = _run(
        capsys, "explain", model, *paths, "--out", tmp_path, "--method", "gradcam",
        "--layer", "nope",
    )  # fmt: skip
    assert status == 1
    assert "nope" in err and "conv_1" in err
    status, _, err = _run(
        capsys, "explain", model, *paths, "--out", tmp_path, "--layer", "conv_1"
    )
    assert status == 2 and "add --method gradcam" in err


def test_explain_offers_the_methods_of_the_library():
    from pneumoclf.cli._parser import EXPLAIN_METHODS
    from pneumoclf.explain import METHODS

    assert EXPLAIN_METHODS == METHODS


def test_explain_writes_the_overlays_of_the_method_asked(
    trained, data_dir, tmp_path, capsys
):
    _, model, _ = trained
    paths = _image_paths(data_dir)[:2]
    status, out, _ = _run(
        capsys, "explain", model, *paths, "--out", tmp_path, "--method", "gradcam"
    )
    assert status == 0
    assert out.split() == [str(tmp_path / f"{Path(p).stem}_gradcam.png") for p in paths]


# ------------------------------------------------------------------------- tune


@pytest.mark.slow
def test_tune_shares_a_stored_study_and_saves_the_best(data_dir, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    model = tmp_path / "best.pneumoclf"
    common = ["tune", data_dir, "--storage", storage, "--study-name", "s",
              "--epochs", 1, "--image-size", 16]  # fmt: skip
    status, out, _ = _run(capsys, *common, "--n-trials", 2, "-o", model)
    assert status == 0
    assert "Study 's': 2 complete, 0 pruned, 0 failed trials." in out
    assert "Best trial #" in out and "cnn__filters = " in out
    best = load_model(model)
    assert best.predict_proba(_image_paths(data_dir)).shape[1] == 2
    assert best[-1].target_recall == TARGET_RECALL
    assert "cnn__target_recall" not in out
    card = model.with_name("best.card.md")
    assert f"its model card to {card}" in out
    status, info, _ = _run(capsys, "info", model)
    assert status == 0 and info == card.read_text(encoding="utf-8")
    assert "## Hyper-parameter search" in info
    assert (
        "Optuna study 's' of 2 trials (2 complete, 0 pruned, 0 failed), seed 0" in info
    )
    assert "validation part of" in info and "of the 48 (24 pneumonia" in info
    assert "Searched: cnn__" in info and "Fixed: cnn__epochs = 1" in info

    status, out, _ = _run(capsys, *common, "--n-trials", 3, "--quiet")
    assert (status, out) == (0, "")
    import optuna

    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 3


# ------------------------------------------------------------- demo and version


@pytest.mark.slow
def test_demo(capsys):
    status, out, _ = _run(capsys, "demo", "--epochs", "1", "--seed", "3")
    assert status == 0
    assert "split (seed 3)" in out
    assert "training on 160 images (80 NORMAL, 80 PNEUMONIA)" in out
    for label in ("ROC AUC", "Recall", "Specificity", "Precision", "F2", "Elapsed"):
        assert label in out
    recall = next(line for line in out.splitlines() if line.startswith("Recall"))
    assert "95% CI" in recall


def test_version_in_process(capsys):
    status, out, _ = _run(capsys, "--version")
    assert status == 0
    assert out.strip() == f"pneumoclf {pneumoclf.__version__}"


def test_a_ctrl_c_once_the_command_is_done_changes_nothing():
    script = (
        "import os, signal, sys; from pneumoclf.cli import console_main; "
        "status = console_main(['--version']); "
        "os.kill(os.getpid(), signal.SIGINT); print('finished'); sys.exit(status)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "finished"
    assert "Traceback" not in run.stderr


def test_installed_console_script():
    script = Path(sys.executable).with_name("pneumoclf")
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"pneumoclf {pneumoclf.__version__}"


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["train", "--help"]])
def test_help_and_version_load_no_heavy_library(argv):
    # What --help and --version import decides how fast they answer.
    code = (
        "import sys\n"
        "from pneumoclf.cli import main\n"
        f"status = main({argv!r})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tensorflow', 'keras', 'sklearn', 'scikeras', 'PIL'})\n"
        "print('heavy:', heavy, file=sys.stderr)\n"
        "sys.exit(status)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "heavy: []" in result.stderr


@pytest.mark.slow
def test_tensorflow_start_up_lines_never_reach_the_terminal(trained, data_dir):
    script = Path(sys.executable).with_name("pneumoclf")
    result = subprocess.run(
        [script, "predict", trained[1], _an_x_ray(data_dir, trained[1])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("path,pneumonia_probability,label,input_check\n")
    assert result.stderr == ""


def test_a_failing_tensorflow_start_shows_what_it_printed(capsys, monkeypatch):
    from pneumoclf import cli

    def failing_import(name, *args, **kwargs):
        if name == "tensorflow":
            os.write(2, b"native: no such library\n")
            raise ImportError("TensorFlow could not start")
        return real_import(name, *args, **kwargs)

    real_import = builtins.__import__
    monkeypatch.delitem(sys.modules, "tensorflow")
    monkeypatch.setattr("builtins.__import__", failing_import)
    status = cli.main(["predict", "m.pneumoclf", "x.png"])
    err = capsys.readouterr().err
    assert status == 1
    assert "native: no such library" in err
    assert err.endswith("pneumoclf: error: TensorFlow could not start\n")


# ----------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def broken_data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    write_split(root, 4, seed=2)
    (root / "PNEUMONIA" / "person99_virus_1.jpeg").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def corrupt_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("corrupt") / "model.pneumoclf"
    path.write_text("not a model")
    return path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "{tmp}/absent", "-o", "{tmp}/m"], "{tmp}/absent"),
        (["train", "{tmp}", "-o", "{tmp}/m"], "holds neither NORMAL/"),
        (["train", "{broken}", "-o", "{tmp}/m"], "person99_virus_1.jpeg: not an image"),
        (["train", "{data}", "-o", "{tmp}/absent/m"], "folder {tmp}/absent does not"),
        (["evaluate", "{tmp}/absent.pneumoclf", "{data}"], "{tmp}/absent.pneumoclf"),
        (["evaluate", "{corrupt}", "{data}"], "not a pneumoclf model file"),
        (["predict", "{model}", "{tmp}/absent.jpeg"], "absent.jpeg: file not found"),
        (["train", "{data}", "-o", "{tmp}/m", "--learning-rate", "1e6", "--epochs", "2",
          "--image-size", "16", "--threshold", "0.5", "--quiet"], "Training "),
    ],
)  # fmt: skip
def test_failures_exit_1_with_a_message(
    argv, message, tmp_path, data_dir, broken_data_dir, corrupt_model, trained, capsys
):
    places = dict(
        tmp=tmp_path, data=data_dir, broken=broken_data_dir, corrupt=corrupt_model,
        model=trained[1],
    )  # fmt: skip
    status, _, err = _run(capsys, *(arg.format(**places) for arg in argv))
    assert status == 1
    assert err.startswith("pneumoclf: error: ")
    assert message.format(**places) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required: COMMAND"),
        (["train", "d", "-o", "m", "--epochs", "0"],
         "argument --epochs: The 'epochs' parameter of PneumoniaCNNClassifier must "
         "be an int in the range [1, inf). Got 0 instead."),
        (["train", "d", "-o", "m", "--epochs", "ten"],
         "argument --epochs: invalid int value: 'ten'"),
        (["train", "d", "-o", "m", "--threshold", "1.5"],
         "argument --threshold: The 'threshold' parameter"),
        (["train", "d", "-o", "m", "--threshold", "high"],
         "argument --threshold: must be a number in [0, 1) or 'auto', got 'high'"),
        (["train", "d", "-o", "m", "--dropout", "1"],
         "argument --dropout: The 'dropout' parameter of PneumoniaCNNClassifier must "
         "be a float in the range [0.0, 1.0)"),
        (["train", "d", "-o", "m", "--image-size", "0"],
         "argument --image-size: The 'image_size' parameter of ImageLoader"),
        (["demo", "--epochs", "-3"], "argument --epochs: The 'epochs' parameter"),
        (["train", "d"], "required: -o/--output"),
        (["train", "d", "-o", "m", "--threshold", "0.3", "--target-recall", "0.9"],
         "--target-recall 0.9 needs --threshold auto"),
        (["evaluate", "m"], "required: DATA_DIR"),
        (["predict", "m"], "required: FILE"),
        (["explain", "m", "f.png"], "required: --out"),
        (["tune", "d"], "required: --n-trials"),
        (["tune", "d", "--n-trials", "2", "--scoring", "f1"], "invalid choice: 'f1'"),
        (["tune", "d", "--n-trials", "2", "--storage", "sqlite:///s.db"],
         "--storage sqlite:///s.db needs --study-name"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(argv, message, capsys):
    status, _, err = _run(capsys, *argv)
    assert status == 2
    assert message in err


def test_interrupt_exits_130(data_dir, tmp_path, capsys, monkeypatch):
    def interrupt(root):
        raise KeyboardInterrupt

    monkeypatch.setattr("pneumoclf.datasets.load_chest_xray", interrupt)
    status, _, err = _run(capsys, "train", data_dir, "-o", tmp_path / "m")
    assert status == 130
    assert err == "pneumoclf: error: interrupted; no partial file was left.\n"


def test_interrupted_tune_prints_one_line(data_dir, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pneumoclf.PneumoniaCNNClassifier, "fit", interrupt)
    status, _, err = _run(
        capsys, "tune", data_dir, "--n-trials", 1, "--epochs", 1, "--image-size", 16
    )
    assert status == 130
    assert "failed" not in err
    assert err.splitlines()[-1] == (
        "pneumoclf: error: interrupted; no partial file was left."
    )


def _read_only_folder(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def _system_folder(tmp_path):
    return Path("/sys")


@pytest.mark.parametrize(
    "make_folder",
    [pytest.param(_read_only_folder, marks=not_root), _system_folder],
    ids=["read-only", "system"],
)
def test_an_output_folder_that_cannot_be_written_is_named_before_training(
    tmp_path, capsys, monkeypatch, make_folder
):
    folder = make_folder(tmp_path)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pytest.skip(f"{folder} is writable here")
    except OSError:
        pass
    monkeypatch.setattr("pneumoclf.datasets.load_chest_xray", _never_called)
    output = folder / "m.pneumoclf"

    status, _, err = _run(capsys, "train", tmp_path, "-o", output)

    assert status == 1
    assert err.startswith(
        f"pneumoclf: error: -o/--output {output}: cannot write in the folder {folder}"
    )


def _never_called(*args, **kwargs):
    raise AssertionError("the training data was read")


# --------------------------------------------------------------- signed models


@pytest.fixture(scope="module")
def signed_model(data_dir, tmp_path_factory):
    model = tmp_path_factory.mktemp("signed") / "signed.pneumoclf"
    argv = ["train", data_dir, "-o", model, "--epochs", 1, "--image-size", 16,
            "--seed", 0, "--batch-size", 16, "--quiet"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PNEUMOCLF_MODEL_KEY", "correct horse battery staple")
        assert main([str(arg) for arg in argv]) == 0
    return model


def test_train_signs_with_the_key_of_the_environment(signed_model, trained):
    assert load_model(signed_model, key="correct horse battery staple") is not None
    with pytest.raises(pneumoclf.persistence.ModelFileError, match="not signed"):
        load_model(trained[1], key="correct horse battery staple")


@pytest.mark.parametrize(
    ("key", "model", "status", "message"),
    [
        ("correct horse battery staple", "signed", 0, ""),
        (None, "signed", 0, ""),
        ("wrong horse battery staple", "signed", 1, "or was signed with another key"),
        ("correct horse battery staple", "unsigned", 1, "is not signed, so it is"),
        ("", "signed", 2, "PNEUMOCLF_MODEL_KEY is set but empty"),
        ("k", "signed", 2, "PNEUMOCLF_MODEL_KEY holds 1 bytes; a key that signs"),
        ("correct horse battery \udcff", "signed", 1, "signed with another key"),
    ],
    ids=["right-key", "no-key", "wrong-key", "unsigned", "empty-key", "one-byte",
         "not-utf8"],
)  # fmt: skip
def test_predict_checks_the_key_of_the_environment(
    signed_model, trained, data_dir, capsys, monkeypatch, key, model, status, message
):
    if key is None:
        monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    else:
        monkeypatch.setenv("PNEUMOCLF_MODEL_KEY", key)
    model = signed_model if model == "signed" else trained[1]

    result = _run(capsys, "predict", model, _image_paths(data_dir)[0])

    assert result[0] == status
    assert message in result[2]


# ---------------------------------------------- awkward paths and hostile files


@pytest.fixture(scope="module")
def cli_model(awkward_root, tmp_path_factory):
    model = tmp_path_factory.mktemp("cli") / AWKWARD_MODEL_NAME
    argv = ["train", awkward_root, "-o", model, "--epochs", 1, "--image-size", SIDE,
            "--seed", 0, "--batch-size", 16, "--quiet"]  # fmt: skip
    with contextlib.redirect_stderr(io.StringIO()):
        status = main([str(arg) for arg in argv])
    return status, model


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def test_cli_trains_on_awkward_paths_into_an_awkward_file_name(cli_model):
    status, model = cli_model

    assert status == 0
    assert sorted(model.parent.iterdir()) == [model.with_suffix(".card.md"), model]
    assert load_model(model)[-1].image_shape_ == (SIDE, SIDE, 1)


def test_cli_predicts_awkward_paths_exactly(cli_model, awkward_root, capsys):
    _, model = cli_model
    paths = [str(path) for path in sorted(awkward_root.glob("train/*/scan*"))[:4]]

    status, out, _ = run_cli(capsys, "predict", model, *paths)

    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["path"] for row in rows] == paths
    expected = load_model(model).predict_proba(paths)[:, 1]
    np.testing.assert_array_equal(
        [float(row["pneumonia_probability"]) for row in rows], expected
    )


def test_cli_predicts_a_file_whose_name_starts_with_a_dash(
    cli_model, awkward_root, tmp_path, monkeypatch, capsys
):
    _, model = cli_model
    training_image = Path(_first_passing(str(awkward_root), str(model), "**/*.png"))
    (tmp_path / "-scan.png").write_bytes(training_image.read_bytes())
    monkeypatch.chdir(tmp_path)

    status, out, _ = run_cli(capsys, "predict", model, "--json", "--", "-scan.png")

    assert status == 0
    assert [row["path"] for row in json.loads(out)] == ["-scan.png"]


@not_root
def test_cli_names_an_image_it_may_not_read(cli_model, tmp_path, capsys):
    locked = save_image(Image.new("L", (SIDE, SIDE), 10), tmp_path / "locked.png")
    locked.chmod(0)
    try:
        status, _, err = run_cli(capsys, "predict", cli_model[1], locked)
    finally:
        locked.chmod(0o644)

    assert status == 1
    assert f"{locked}: permission denied" in err


@pytest.fixture
def hostile_places(tmp_path, cli_model, awkward_root):
    folder = tmp_path / "hostile"
    folder.mkdir()
    with_broken_link = tmp_path / "with_broken_link"
    for label in ("NORMAL", "PNEUMONIA"):
        for source in sorted((awkward_root / "train" / label).iterdir())[:2]:
            destination = with_broken_link / label / source.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read_bytes())
    os.symlink(
        tmp_path / "gone.jpeg", with_broken_link / "NORMAL" / "IM-0042-0001.jpeg"
    )
    os.symlink(folder / "loop_b", folder / "loop_a.pneumoclf")
    os.symlink(folder / "loop_a.pneumoclf", folder / "loop_b")
    (folder / "notes.png").write_text("not an image")
    return dict(
        model=cli_model[1], data=awkward_root, dir=folder, broken=with_broken_link,
        good=next((awkward_root / "train" / "NORMAL").iterdir()),
        dangling=dangling_symlink(folder), bomb=decompression_bomb(folder),
        text=folder / "notes.png", model_loop=folder / "loop_a.pneumoclf",
        tmp=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # A folder is searched, and the images in it that cannot be read named.
        (["predict", "{model}", "{dir}"], "{text}: not an image"),
        (["predict", "{model}", "{dangling}"], "{dangling}: broken symbolic link"),
        (["predict", "{model}", "{bomb}"], "{bomb}: too many pixels"),
        (["predict", "{model}", "{text}"], "{text}: not an image"),
        (["predict", "{model}", "{good}", "-o", "{dir}"],
         "-o/--output {dir} is a directory"),
        (["evaluate", "{dir}", "{data}"], "{dir}: Is a directory."),
        (["evaluate", "{model_loop}", "{data}"],
         "{model_loop}: Too many levels of symbolic links."),
        (["train", "{broken}", "-o", "{tmp}/m.pneumoclf"],
         "{broken}/NORMAL/IM-0042-0001.jpeg: broken symbolic link"),
        (["train", "{data}", "-o", "{dir}"], "-o/--output {dir} is a directory"),
    ],
)  # fmt: skip
def test_cli_names_the_hostile_file(argv, message, hostile_places, capsys):
    status, _, err = run_cli(capsys, *(arg.format(**hostile_places) for arg in argv))

    assert status == 1
    assert err.startswith("pneumoclf: error: ")
    assert message.format(**hostile_places) in err
    assert not (hostile_places["tmp"] / "m.pneumoclf").exists()


@pytest.mark.parametrize(
    ("name", "home"),
    [("TARGET_RECALL", "recipes"), ("DROPOUT", "recipes"), ("DEMO_SPLIT", "recipes"),
     ("FIGURE_NAMES", "plotting")],
)  # fmt: skip
def test_settings_that_moved_to_the_library_warn_and_are_the_same(name, home):
    import importlib

    import pneumoclf.cli as cli

    with pytest.warns(FutureWarning, match=f"moved to pneumoclf.{home}.{name}"):
        value = getattr(cli, name)
    assert value == getattr(importlib.import_module(f"pneumoclf.{home}"), name)


@pytest.mark.parametrize(
    "name",
    ["=cmd.png", "+1.png", "-scan.png", "@sum.png", "line\rbreak.png", "a,b\n.png"],
)
def test_predict_csv_is_safe_in_a_spreadsheet_and_keeps_one_row_per_file(
    trained, data_dir, tmp_path, monkeypatch, capsys, name
):
    (tmp_path / name).write_bytes(_an_x_ray(data_dir, trained[1]).read_bytes())
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(capsys, "predict", trained[1], "--", name)
    assert status == 0
    # Read back as a spreadsheet would: rows split at any line break outside quotes.
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert len(rows) == 2
    path = rows[1][0]
    if name[0] in "=+-@":
        assert path == "'" + name
    else:
        assert path == name


@pytest.mark.slow
def test_train_saves_no_model_that_learned_nothing(
    data_dir, tmp_path, capsys, monkeypatch
):
    from pneumoclf._training import run

    def same_for_all(model, images, batch_size):
        return np.full(len(images), 0.5, dtype=np.float32)

    monkeypatch.setattr(run, "network_scores", same_for_all)
    status, _, err = _run(
        capsys, "train", data_dir, "-o", tmp_path / "m.pneumoclf",
        "--epochs", "1", "--image-size", "16", "--quiet",
    )  # fmt: skip
    assert status == 1
    assert "Training failed: The network gives every training image the same" in err
    assert err.rstrip().endswith("Nothing was saved.")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the input check


@pytest.fixture
def with_a_blank_frame(data_dir, trained, tmp_path):
    """Two X-rays the model accepts and a blank frame, as files."""
    blank = tmp_path / "blank.png"
    Image.new("L", (16, 16), 128).save(blank)
    return [str(_an_x_ray(data_dir, trained[1])), str(blank)]


@pytest.mark.parametrize("output", ["--json", "csv", "--table"])
def test_predict_gives_no_label_to_what_the_input_check_refuses(
    trained, with_a_blank_frame, capsys, output
):
    flags = [] if output == "csv" else [output]
    status, out, _ = _run(capsys, "predict", trained[1], *with_a_blank_frame, *flags)

    assert status == 4
    if output == "--json":
        good, blank = json.loads(out)
        assert (blank["label"], blank["pneumonia_probability"]) == (None, None)
        assert blank["input_check"].startswith("nearly uniform image")
        assert good["input_check"] == "ok" and good["label"] in ("NORMAL", "PNEUMONIA")
    elif output == "csv":
        header, good, blank = csv.reader(io.StringIO(out))
        assert header == ["path", "pneumonia_probability", "label", "input_check"]
        assert blank[1:3] == ["", ""] and blank[3].startswith("nearly uniform")
        assert good[3] == "ok" and good[2] in ("NORMAL", "PNEUMONIA")
    else:
        blank = out.splitlines()[2].split(maxsplit=3)
        assert blank[1:3] == ["-", "-"] and blank[3].startswith("nearly uniform")


def test_skip_input_check_labels_everything_and_says_so(
    trained, with_a_blank_frame, capsys
):
    status, out, _ = _run(
        capsys, "predict", trained[1], *with_a_blank_frame, "--json",
        "--skip-input-check",
    )  # fmt: skip

    assert status == 0
    rows = json.loads(out)
    assert all(row["label"] in ("NORMAL", "PNEUMONIA") for row in rows)
    assert {row["input_check"] for row in rows} == {"not checked (--skip-input-check)"}


def test_the_onnx_predictor_refuses_alike(onnx_export, with_a_blank_frame, capsys):
    status, out, _ = _run(capsys, "predict", onnx_export, *with_a_blank_frame, "--json")

    assert status == 4
    assert [row["label"] is None for row in json.loads(out)] == [False, True]


def test_evaluate_leaves_refused_images_out_and_names_them(
    trained, data_dir, tmp_path, capsys
):
    folder = tmp_path / "chest_xray"
    shutil.copytree(data_dir, folder)
    Image.new("L", (16, 16), 0).save(folder / "val" / "NORMAL" / "black.jpeg")

    status, out, err = _run(capsys, "evaluate", trained[1], folder, "--json")

    assert status == 4
    assert "black.jpeg: nearly uniform image" in err
    summary = json.loads(out)
    assert summary["input_check"].endswith("refused")
    assert int(summary["input_check"].split()[0]) >= 1
    assert summary["tn"] + summary["fp"] + summary["fn"] + summary["tp"] == 49 - int(
        summary["input_check"].split()[0]
    )


def test_explain_draws_no_map_over_a_refused_image(
    trained, with_a_blank_frame, tmp_path, capsys
):
    status, out, err = _run(
        capsys, "explain", trained[1], *with_a_blank_frame, "--out", tmp_path / "maps"
    )

    assert status == 4
    assert "blank.png: nearly uniform image" in err
    assert [Path(line).name.split("_")[0] for line in out.splitlines()] == [
        Path(with_a_blank_frame[0]).stem.split("_")[0]
    ]


# ------------------------------------------------------------------ at a new site


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory):
    """Labelled local X-rays: 40 of each class, other images than the training ones."""
    root = tmp_path_factory.mktemp("local")
    write_split(root, 40, seed=3)
    return root


def test_adapt_writes_a_site_model_and_says_what_to_expect(
    trained, local_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    _, model, _ = trained
    site_model = tmp_path / "site.pneumoclf"
    status, out, _ = _run(capsys, "adapt", model, local_dir, "-o", site_model)
    assert status == 0
    adapted = load_model(site_model)
    (record,) = adapted[-1].adaptations_
    assert f"New threshold {record['threshold']:.4f}" in out
    assert f"recall {record['recall']:.1%}" in out
    assert record["n_images"] + out.count("no label for") <= 80
    assert adapted[-1].threshold_ == pytest.approx(record["threshold"])
    status, card, _ = _run(capsys, "info", site_model)
    assert "## Adaptation to a site" in card and card.startswith("# Model card")


def test_adapt_json_is_the_record(trained, local_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    site_model = tmp_path / "site.pneumoclf"
    status, out, _ = _run(
        capsys, "adapt", trained[1], local_dir, "-o", site_model, "--json",
        "--min-recall", "0.9",
    )  # fmt: skip
    assert status == 0
    record = json.loads(out)
    assert record == load_model(site_model)[-1].adaptations_[0]
    assert record["min_recall"] == 0.9


def test_adapt_a_signed_model_needs_its_key(
    signed_model, local_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    site_model = tmp_path / "site.pneumoclf"
    status, _, err = _run(capsys, "adapt", signed_model, local_dir, "-o", site_model)
    assert status == 2
    assert "is signed: set PNEUMOCLF_MODEL_KEY" in err
    assert not site_model.exists()
    monkeypatch.setenv("PNEUMOCLF_MODEL_KEY", "correct horse battery staple")
    status, _, _ = _run(capsys, "adapt", signed_model, local_dir, "-o", site_model)
    assert status == 0
    assert pneumoclf.persistence.is_signed(site_model)
    assert load_model(site_model, key="correct horse battery staple")[-1].adaptations_


def test_adapt_refuses_too_few_local_cases(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    write_split(tmp_path / "few", 8, seed=4)
    status, _, err = _run(
        capsys, "adapt", trained[1], tmp_path / "few", "-o", tmp_path / "s.pneumoclf"
    )
    assert status == 1
    assert "Too few local cases to adapt the model to" in err
    assert not (tmp_path / "s.pneumoclf").exists()


def test_check_site_json(trained, local_dir, capsys, monkeypatch):
    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    status, out, _ = _run(capsys, "check-site", trained[1], local_dir, "--json")
    assert status == 0
    finding = json.loads(out)
    assert isinstance(finding["shifted"], bool)
    assert 0 < finding["p_value"] <= 1
    assert 0 <= finding["estimated_prevalence"] <= 1
    assert finding["n_images"] <= 80 and finding["message"]


def test_check_site_refuses_a_small_batch(trained, data_dir, capsys, monkeypatch):
    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    status, _, err = _run(capsys, "check-site", trained[1], *_image_paths(data_dir)[:5])
    assert status == 1
    assert "too few to compare a population" in err


def test_predict_refers_the_images_in_the_band(trained, local_dir, capsys, monkeypatch):
    from pneumoclf.metrics import referral_mask

    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    _, model, _ = trained
    status, out, _ = _run(capsys, "predict", model, local_dir, "--refer-band", "0.9")
    assert status in (0, 4)  # 4: the input check refused some synthetic images
    rows = [row for row in csv.DictReader(io.StringIO(out)) if row["label"]]
    scores = np.array([float(row["pneumonia_probability"]) for row in rows])
    threshold = load_model(model)[-1].threshold_
    referred = referral_mask(scores, threshold, 0.9)
    assert referred.any()
    labels = np.array([row["label"] for row in rows])
    assert (labels[referred] == "REFER").all()
    assert (labels[~referred] != "REFER").all()


def test_evaluate_reports_the_refer_band(trained, local_dir, capsys, monkeypatch):
    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    _, model, _ = trained
    status, out, _ = _run(capsys, "evaluate", model, local_dir, "--refer-band", "0.5")
    assert status in (0, 4)
    assert "Referred" in out and "Specificity, labelled" in out
    _, out, _ = _run(
        capsys, "evaluate", model, local_dir, "--refer-band", "0.5", "--json"
    )
    assert json.loads(out)["referral"]["refer_band"] == 0.5


def test_evaluate_warns_when_it_is_given_the_training_images(
    trained, data_dir, local_dir, capsys
):
    _, model, _ = trained
    options = ("--skip-input-check", "--json")
    status, _, err = _run(capsys, "evaluate", model, data_dir, *options)
    assert status == 0
    assert f"48 of the 48 images of {data_dir} were used to train this model" in err
    _, _, err = _run(capsys, "evaluate", model, local_dir, *options)
    assert "were used to train this model" not in err


def test_a_model_knows_its_training_images_by_their_pixels(trained, data_dir):
    pipeline = load_model(trained[1])
    paths = _image_paths(data_dir)
    images = pipeline[:-1].transform(paths)
    assert pipeline[-1].trained_on(images).all()
    assert not pipeline[-1].trained_on(np.clip(images + 0.01, 0, 1)).any()
    assert pipeline[-1].training_digests_.dtype == np.uint64


@pytest.mark.parametrize("band", ["1", "-0.2", "wide"])
def test_refer_band_must_be_a_share(trained, data_dir, capsys, band):
    status, _, err = _run(
        capsys, "predict", trained[1], _image_paths(data_dir)[0], "--refer-band", band
    )
    assert status == 2 and "--refer-band" in err
