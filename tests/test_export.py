"""ONNX export, and prediction from it without TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from awkward import SIDE, SMALL_CNN
from sklearn.pipeline import Pipeline
from synthetic import blob_images, write_images

from pneumoclf import ImageLoader, PneumoniaCNNClassifier
from pneumoclf.preprocessing import read_images

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from pneumoclf.export import FORMAT, OnnxPneumoniaModel, export_onnx  # noqa: E402

# ONNX Runtime and TensorFlow round the network's float32 arithmetic differently.
PROBABILITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def calibrated_pipeline(tmp_path_factory):
    """Padding, equalisation, calibration, a prevalence and a chosen threshold."""
    X, y = blob_images(80, 24, seed=2)
    paths = write_images(tmp_path_factory.mktemp("wide"), X, y)
    pipe = Pipeline(
        [
            (
                "load",
                ImageLoader(image_size=(20, 16), resize="pad", normalize="equalize"),
            ),
            (
                "cnn",
                PneumoniaCNNClassifier(
                    **{**SMALL_CNN, "early_stopping": True},
                    threshold="auto",
                    calibration="platt",
                    prevalence=0.3,
                    dropout=0.3,
                    validation_fraction=0.25,
                ),
            ),
        ]
    )
    return pipe.fit(paths[:60], y[:60]), paths[60:]


def _far_from_threshold(probabilities, threshold):
    return np.abs(probabilities - threshold) > PROBABILITY_TOLERANCE


def test_the_export_predicts_as_the_pipeline(onnx_file, held_out_files):
    paths, expected = held_out_files
    model = OnnxPneumoniaModel(onnx_file)
    probabilities = model.predict_proba(paths)
    np.testing.assert_allclose(probabilities, expected, atol=PROBABILITY_TOLERANCE)
    assert _far_from_threshold(expected[:, 1], model.threshold_).all()
    labels = model.classes_[(expected[:, 1] >= model.threshold_).astype(int)]
    np.testing.assert_array_equal(model.predict(paths), labels)


def test_loader_calibration_prevalence_and_threshold_travel_with_the_file(
    calibrated_pipeline, tmp_path
):
    pipe, held_out = calibrated_pipeline
    path = export_onnx(pipe, tmp_path / "model.onnx")
    model = OnnxPneumoniaModel(path)
    cnn = pipe[-1]
    assert model.threshold_ == cnn.threshold_
    assert model.image_shape_ == (20, 16, 1)
    assert model.metadata_["calibration"] == list(cnn.calibration_)
    assert model.metadata_["prevalence"] == 0.3
    assert model.metadata_["resize"] == "pad"
    assert model.metadata_["normalize"] == "equalize"
    expected = pipe.predict_proba(held_out)
    np.testing.assert_allclose(
        model.predict_proba(held_out), expected, atol=PROBABILITY_TOLERANCE
    )
    far = _far_from_threshold(expected[:, 1], cnn.threshold_)
    np.testing.assert_array_equal(
        model.predict(held_out)[far], pipe.predict(held_out)[far]
    )


def test_loaded_images_predict_as_their_paths(onnx_file, held_out_files):
    paths, _ = held_out_files
    model = OnnxPneumoniaModel(onnx_file)
    images = model.loader_.transform(paths)
    np.testing.assert_array_equal(
        model.predict_proba(images), model.predict_proba(paths)
    )
    np.testing.assert_array_equal(
        model.predict_proba(images[..., 0]), model.predict_proba(paths)
    )
    with pytest.raises(ValueError, match=r"shape \(8, 8, 1\)"):
        model.predict_proba(np.zeros((1, 8, 8, 1), np.float32))


def test_the_metadata_says_how_to_predict(onnx_file, awkward_pipeline):
    stored = {prop.key: prop.value for prop in onnx.load(onnx_file).metadata_props}
    assert stored["pneumoclf_format"] == FORMAT
    assert json.loads(stored["classes"]) == awkward_pipeline.classes_.tolist()
    assert json.loads(stored["image_size"]) == [SIDE, SIDE]
    assert json.loads(stored["threshold"]) == awkward_pipeline[-1].threshold_
    assert json.loads(stored["calibration"]) is None


def test_the_export_checks_its_inputs_as_the_pipeline(
    onnx_file, awkward_pipeline, held_out_files, tmp_path
):
    from PIL import Image

    from pneumoclf.exceptions import InputCheckWarning

    blank = tmp_path / "blank.png"
    Image.new("L", (SIDE, SIDE), 128).save(blank)
    paths = [*held_out_files[0][:5], str(blank)]
    model = OnnxPneumoniaModel(onnx_file)

    results = model.check_inputs(paths)
    expected = awkward_pipeline[-1].check_inputs(awkward_pipeline[0].transform(paths))

    assert results.tolist() == expected.tolist()
    assert results[-1].startswith("nearly uniform image")
    np.testing.assert_allclose(
        model.input_reference_.precision,
        awkward_pipeline[-1].input_reference_.precision,
    )
    with pytest.warns(InputCheckWarning, match="1 of 6 images"):
        model.predict_proba(paths)


def test_an_export_without_a_reference_checks_the_pixels_only(onnx_file, tmp_path):
    old = OnnxPneumoniaModel(_rewritten(onnx_file, tmp_path, input_reference=None))

    assert old.input_reference_ is None
    blank = np.full((1, SIDE, SIDE, 1), 0.5, dtype=np.float32)
    assert old.check_inputs(blank)[0].startswith("nearly uniform image")


def _rewritten(onnx_file, tmp_path, **changes):
    proto = onnx.load(onnx_file)
    props = {prop.key: prop.value for prop in proto.metadata_props}
    props.update(changes)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(
        proto, {key: value for key, value in props.items() if value is not None}
    )
    path = tmp_path / "changed.onnx"
    onnx.save(proto, path)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pneumoclf_format": None}, "not a pneumoclf ONNX export"),
        ({"threshold": "1.5"}, r"threshold 1.5 is not in \[0, 1\)"),
        ({"classes": '["NORMAL"]'}, "are not two labels"),
        ({"image_size": "[0, 16]"}, "image_size"),
        ({"resize": '"crop"'}, "resize 'crop' is unknown"),
        ({"calibration": "not json"}, "damaged pneumoclf metadata"),
        ({"input_reference": '{"mean": [1.0]}'}, "damaged pneumoclf metadata"),
        ({"classes": '["PNEUMONIA", "NORMAL"]'}, "the pneumonia class last"),
        ({"classes": '["NORMAL", "NORMAL"]'}, "the pneumonia class last"),
        ({"classes": '[0, "PNEUMONIA"]'}, "of one kind"),
        ({"calibration": "[-1.0, 0.0]"}, "is not a positive slope"),
        ({"calibration": "[1.0]"}, "is not a positive slope"),
        ({"prevalence": "5"}, "prevalence 5 is not in"),
        ({"prevalence": "0"}, "prevalence 0 is not in"),
        ({"training_prevalence": "1"}, "training_prevalence 1 is not in"),
        ({"image_size": "[30000, 30000]"}, r"not one batch of images of shape \(30000"),
    ],
)
def test_a_file_that_is_not_a_sound_export_is_refused(
    onnx_file, tmp_path, changes, message
):
    with pytest.raises(ValueError, match=message):
        OnnxPneumoniaModel(_rewritten(onnx_file, tmp_path, **changes))


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        OnnxPneumoniaModel(path)


def test_only_a_fitted_loader_and_classifier_export(awkward_classifier, tmp_path):
    with pytest.raises(ValueError, match="export_onnx takes"):
        export_onnx(Pipeline([("load", ImageLoader())]), tmp_path / "x.onnx")
    # A classifier alone gets the loader of its input size.
    path = export_onnx(awkward_classifier, tmp_path / "alone.onnx")
    assert OnnxPneumoniaModel(path).image_shape_ == (SIDE, SIDE, 1)


@pytest.mark.slow
def test_prediction_from_the_export_never_imports_tensorflow(onnx_file, held_out_files):
    paths, expected = held_out_files
    script = textwrap.dedent(
        f"""
        import json, sys
        from pneumoclf.export import OnnxPneumoniaModel
        paths = {[str(path) for path in paths]!r}
        scores = OnnxPneumoniaModel({str(onnx_file)!r}).predict_proba(paths)
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        print(json.dumps({{"heavy": heavy, "scores": scores[:, 1].tolist()}}))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["heavy"] == []
    np.testing.assert_allclose(
        result["scores"], expected[:, 1], atol=PROBABILITY_TOLERANCE
    )


def test_an_adapted_model_exports_its_site_calibration_and_threshold(
    calibrated_pipeline, tmp_path
):
    import warnings

    from pneumoclf.exceptions import SiteShiftWarning
    from pneumoclf.site import adapt_to_site

    pipe, held_out = calibrated_pipeline
    X, y = blob_images(60, 24, seed=9)
    local = write_images(tmp_path / "local", X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteShiftWarning)
        adapted = adapt_to_site(pipe, local, y, min_recall=0.9)
    assert adapted[-1].calibration_ != pipe[-1].calibration_
    export_onnx(adapted, tmp_path / "site.onnx")
    onnx_model = OnnxPneumoniaModel(tmp_path / "site.onnx")
    assert onnx_model.threshold_ == pytest.approx(adapted[-1].threshold_)
    np.testing.assert_allclose(
        onnx_model.predict_proba(held_out),
        adapted.predict_proba(held_out),
        atol=PROBABILITY_TOLERANCE,
    )


@pytest.mark.filterwarnings("ignore::pneumoclf.exceptions.InputCheckWarning")
def test_predictions_do_not_depend_on_how_many_images_run_at_once(onnx_file):
    model = OnnxPneumoniaModel(onnx_file)
    rng = np.random.default_rng(0)
    X = rng.random((300, *model.image_shape_[:2]), dtype=np.float32) * 0.5
    whole = model.predict_proba(X)
    in_parts = np.concatenate(
        [model.predict_proba(X[i : i + 7]) for i in range(0, 300, 7)]
    )
    np.testing.assert_allclose(whole, in_parts, atol=1e-6)
    probabilities, checks = model.predict_proba_and_check_inputs(X)
    np.testing.assert_array_equal(probabilities, whole)
    np.testing.assert_array_equal(checks, model.check_inputs(X))


def test_a_graph_with_other_outputs_is_refused(onnx_file, tmp_path):
    proto = onnx.load(onnx_file)
    decoy = onnx.helper.make_tensor_value_info(
        proto.graph.output[0].name, onnx.TensorProto.FLOAT, None
    )
    proto.graph.output.append(decoy)
    path = tmp_path / "decoy.onnx"
    onnx.save(proto, path)
    with pytest.raises(ValueError, match="is not a pneumoclf ONNX export: its outputs"):
        OnnxPneumoniaModel(path)


def test_a_path_that_is_no_regular_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        OnnxPneumoniaModel(fifo)
    with pytest.raises(ValueError, match="cannot be read"):
        OnnxPneumoniaModel(tmp_path / "absent.onnx")


def test_an_export_works_away_from_its_output_and_names_it_on_failure(
    awkward_pipeline, tmp_path, monkeypatch
):
    import errno

    import keras

    workdirs = []

    def full_disk(network, filepath, **kwargs):
        workdirs.append(os.path.dirname(filepath))
        raise OSError(errno.ENOSPC, "No space left on device", filepath)

    monkeypatch.setattr(keras.Model, "export", full_disk)
    output = tmp_path / "model.onnx"
    with pytest.raises(OSError, match="No space left on device") as raised:
        export_onnx(awkward_pipeline, output)
    assert raised.value.filename == str(output)
    # A killed export would leave the converter's folder where it worked.
    assert os.path.dirname(workdirs[0]) != str(tmp_path)
    assert list(tmp_path.iterdir()) == [] and not os.path.exists(workdirs[0])


def test_files_are_read_and_scored_in_parts(
    onnx_file, held_out_files, tmp_path, monkeypatch
):
    from pneumoclf import export as export_module
    from pneumoclf.exceptions import ImageLoadError

    paths = [str(path) for path in held_out_files[0]]
    model = OnnxPneumoniaModel(onnx_file)
    whole = model.predict_proba_and_check_inputs(paths)
    monkeypatch.setattr(export_module, "_FILES_AT_ONCE", 3)
    read = []

    def counting_read(X, *args, **kwargs):
        read.append(len(X))
        return read_images(X, *args, **kwargs)

    monkeypatch.setattr(export_module, "read_images", counting_read)
    parts = model.predict_proba_and_check_inputs(paths)
    np.testing.assert_allclose(parts[0], whole[0], atol=1e-6)
    assert parts[1].tolist() == whole[1].tolist()
    assert max(read) <= 3

    broken = [tmp_path / "a.png", tmp_path / "b.png"]
    for path in broken:
        path.write_bytes(b"not a png")
    with pytest.raises(ImageLoadError) as raised:
        model.predict_proba([str(broken[0]), *paths[:4], str(broken[1])])
    assert [path for path, _ in raised.value.failures] == [str(p) for p in broken]
