"""pneumoclf.archive: scoring many files in shards, resumable, locally or on Dask."""

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from synthetic import blob_images, write_images

pytest.importorskip("pyarrow")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

import pyarrow.parquet

from pneumoclf import archive
from pneumoclf.archive import COLUMNS, archive_files, score_archive
from pneumoclf.export import OnnxPneumoniaModel, export_onnx
from pneumoclf.persistence import save_model

BROKEN = "broken.png"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """45 images in two subfolders, and one file that is no image."""
    root = tmp_path_factory.mktemp("archive images")
    X, y = blob_images(45, 16, seed=3)
    write_images(root / "a", X[:20], y[:20])
    write_images(root / "b", X[20:], y[20:])
    (root / "b" / BROKEN).write_bytes(b"not a png")
    return root


def _rows(path):
    """The rows of a Parquet output, as dicts, sorted by path."""
    table = pyarrow.parquet.read_table(path)
    assert table.column_names == list(COLUMNS)
    return sorted(table.to_pylist(), key=lambda row: row["path"])


def _single_process(model, files):
    """What one OnnxPneumoniaModel says of each readable file: score and check."""
    model = OnnxPneumoniaModel(model)
    readable = [path for path in files if not path.endswith(BROKEN)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = model.predict_proba(readable)[:, 1]
    checks = model.check_inputs(readable)
    return model, dict(zip(readable, zip(scores, checks, strict=True), strict=True))


def _assert_rows_are_single_process_predictions(rows, model_file, files):
    model, expected = _single_process(model_file, files)
    assert [row["path"] for row in rows] == sorted(files)
    for row in rows:
        if row["path"].endswith(BROKEN):
            assert row["error"] and row["pneumonia_probability"] is None
            continue
        score, check = expected[row["path"]]
        assert row["input_check"] == check and row["error"] is None
        if check == "ok":
            assert row["pneumonia_probability"] == score
            label = model.classes_[int(score >= model.threshold_)]
            assert row["label"] == str(label)
        else:
            assert row["label"] is None and row["pneumonia_probability"] is None


def test_an_archive_gets_one_row_per_file_as_single_process_predict(
    onnx_file, folder, tmp_path
):
    files = archive_files([folder])
    summary = score_archive(
        onnx_file, [folder], tmp_path / "out.parquet", n_workers=0, shard_size=8
    )
    assert summary.n_files == summary.n_scored == 46 and summary.n_errors == 1
    rows = _rows(tmp_path / "out.parquet")
    _assert_rows_are_single_process_predictions(rows, onnx_file, files)
    assert not (tmp_path / "out.parquet.parts").exists()


def test_a_model_file_is_scored_through_its_onnx_export(
    awkward_pipeline, folder, tmp_path
):
    model_file = tmp_path / "model.pneumoclf"
    save_model(awkward_pipeline, model_file)
    score_archive(model_file, [folder / "a"], tmp_path / "out.parquet", n_workers=0)
    rows = [row for row in _rows(tmp_path / "out.parquet") if row["label"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = awkward_pipeline.predict_proba([row["path"] for row in rows])
    np.testing.assert_allclose(
        [row["pneumonia_probability"] for row in rows], expected[:, 1], atol=1e-5
    )
    assert {row["model_sha256"] for row in rows} == {archive.file_sha256(model_file)}


def test_an_interrupted_run_resumes_without_duplicates(
    onnx_file, folder, tmp_path, monkeypatch
):
    whole = score_archive(
        onnx_file,
        [folder],
        tmp_path / "whole.parquet",
        n_workers=0,
        shard_size=5,
    )
    calls = []
    score_shard = archive.score_shard

    def interrupted_after_three_shards(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args)
        return score_shard(*args)

    monkeypatch.setattr(archive, "score_shard", interrupted_after_three_shards)
    output = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        score_archive(onnx_file, [folder], output, n_workers=0, shard_size=5)
    assert not output.exists()
    assert len(list((tmp_path / "out.parquet.parts").glob("part-*"))) == 3
    monkeypatch.setattr(archive, "score_shard", score_shard)
    summary = score_archive(onnx_file, [folder], output, n_workers=0, shard_size=5)
    assert summary.n_scored == whole.n_files - 15
    assert _rows(output) == _rows(tmp_path / "whole.parquet")


def test_a_second_run_scores_only_new_files(onnx_file, folder, tmp_path):
    output = tmp_path / "out.parquet"
    score_archive(onnx_file, [folder / "a"], output, n_workers=0)
    summary = score_archive(onnx_file, [folder], output, n_workers=0)
    assert summary.n_scored == 26 and summary.n_files == 46
    assert [row["path"] for row in _rows(output)] == archive_files([folder])


def test_an_output_of_another_model_is_refused(
    onnx_file, awkward_pipeline, folder, tmp_path
):
    output = tmp_path / "out.parquet"
    score_archive(onnx_file, [folder / "a"], output, n_workers=0)
    other = tmp_path / "other.onnx"
    threshold = awkward_pipeline[-1].threshold
    try:
        awkward_pipeline[-1].set_params(threshold=0.3)
        export_onnx(awkward_pipeline, other)
    finally:
        awkward_pipeline[-1].set_params(threshold=threshold)
    with pytest.raises(ValueError, match="holds scores of another model"):
        score_archive(other, [folder / "a"], output, n_workers=0)


def test_files_folders_and_lists(folder, tmp_path):
    listed = tmp_path / "files.txt"
    first = sorted((folder / "a").iterdir())[:2]
    listed.write_text(f"# chosen\n{first[0]}\n\n{first[1]}\n{folder / 'b'}\n")
    files = archive_files([listed, first[0]])
    assert files[:2] == [str(path) for path in first]
    assert len(files) == 2 + 26  # folder b, and no file twice


def test_an_empty_folder_is_refused(onnx_file, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        score_archive(onnx_file, [tmp_path / "empty"], tmp_path / "o.parquet")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"output": "out.csv"}, "must be a .parquet file"),
        ({"shard_size": 0}, "shard_size must be a positive integer"),
        ({"scheduler": "local:0"}, "needs a positive number of workers"),
    ],
)
def test_bad_options_are_refused(onnx_file, folder, tmp_path, options, message):
    output = tmp_path / options.pop("output", "out.parquet")
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match=message):
        score_archive(onnx_file, [folder / "a"], output, **options)


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_same_rows_without_tensorflow(
    onnx_file, folder, tmp_path
):
    distributed = pytest.importorskip("distributed")
    files = archive_files([folder])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        score_archive(
            onnx_file,
            [folder],
            tmp_path / "out.parquet",
            client=client,
            shard_size=6,
        )
        tensorflow_loaded = client.run(lambda: "tensorflow" in sys.modules)
    assert tensorflow_loaded and not any(tensorflow_loaded.values())
    _assert_rows_are_single_process_predictions(
        _rows(tmp_path / "out.parquet"), onnx_file, files
    )


@pytest.mark.slow
def test_local_processes_give_the_same_rows(onnx_file, folder, tmp_path):
    score_archive(
        onnx_file,
        [folder],
        tmp_path / "out.parquet",
        n_workers=2,
        shard_size=10,
    )
    _assert_rows_are_single_process_predictions(
        _rows(tmp_path / "out.parquet"), onnx_file, archive_files([folder])
    )


@pytest.mark.slow
def test_a_killed_command_resumes_to_the_same_rows(onnx_file, tmp_path):
    pytest.importorskip("distributed")
    X, y = blob_images(300, 16, seed=4)
    write_images(tmp_path / "images", X, y)
    whole = tmp_path / "whole.parquet"
    score_archive(onnx_file, [tmp_path / "images"], whole, n_workers=0)
    output = tmp_path / "out.parquet"
    command = [sys.executable, "-m", "pneumoclf.cli", "predict", str(onnx_file),
               str(tmp_path / "images"), "-o", str(output), "--scheduler", "local:2",
               "--shard-size", "10"]  # fmt: skip
    environment = {**os.environ, "PNEUMOCLF_MODEL_KEY": ""}
    del environment["PNEUMOCLF_MODEL_KEY"]
    process = subprocess.Popen(
        command, env=environment, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    parts = tmp_path / "out.parquet.parts"
    deadline = time.monotonic() + 120
    while not list(parts.glob("part-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not output.exists()
    kept = len(list(parts.glob("part-*")))
    assert 0 < kept < 30
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert result.returncode in (0, 4), result.stderr
    assert f"({300 - 10 * kept:,} files scored now" in result.stdout
    assert _rows(output) == _rows(whole)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scheduler", "local:2"], "--scheduler writes Parquet"),
        (["-o", "OUT.parquet", "--json"], "drop --refer-band"),
        (["-o", "OUT.parquet", "--refer-band", "0.1"], "drop --refer-band"),
    ],
)
def test_predict_to_parquet_refuses_options_it_cannot_honour(
    onnx_file, folder, tmp_path, capsys, options, message
):
    from pneumoclf.cli import main

    options = [str(tmp_path / "out.parquet") if o == "OUT.parquet" else o
               for o in options]  # fmt: skip
    status = main(["predict", str(onnx_file), str(folder), *options])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.parquet").exists()
