"""pneumoclf.site: adaptation to labelled local cases, the shift check, prevalence."""

import copy
import json
import warnings

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from synthetic import blob_images

from pneumoclf import ImageLoader, PneumoniaCNNClassifier
from pneumoclf.exceptions import SiteShiftWarning
from pneumoclf.persistence import load_model, save_model
from pneumoclf.site import (
    MIN_BATCH,
    adapt_to_site,
    adaptation_card,
    check_site,
    estimate_prevalence,
    site_threshold,
)

# A synthetic image or two lie past the feature test's threshold; not what these
# tests are about.
pytestmark = pytest.mark.filterwarnings(
    "ignore::pneumoclf.exceptions.InputCheckWarning"
)

SITE_CNN = dict(
    n_conv_blocks=2, filters=4, dense_units=8, head="global_average", epochs=15,
    batch_size=16, learning_rate=3e-3, early_stopping=False,
    validation_fraction=0.25, calibration="platt", threshold="auto",
    target_recall=0.95, random_state=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def site_model():
    """A classifier with 60 validation images, hence a population reference."""
    X, y = blob_images(240, 16, seed=0)
    return PneumoniaCNNClassifier(**SITE_CNN).fit(X, y)


@pytest.fixture(scope="module")
def local_cases():
    """120 labelled images of the same kind, which the model never saw."""
    return blob_images(120, 16, seed=7)


def quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SiteShiftWarning)
        return function(*args, **kwargs)


# ------------------------------------------------------------------- the threshold


def test_site_threshold_is_the_conformal_order_statistic():
    scores = np.linspace(0.01, 0.99, 59)  # (59 + 1) * 0.05 = 3: the third lowest
    assert site_threshold(scores, 0.95) == pytest.approx(scores[2])
    assert site_threshold(scores[:19], 0.95) == pytest.approx(scores[0])


def test_site_threshold_keeps_the_target_recall_on_new_cases():
    rng = np.random.default_rng(0)
    kept = []
    for _ in range(4000):
        scores = rng.beta(5, 2, size=60)
        threshold = site_threshold(scores[:40], 0.9)
        kept.append(np.mean(scores[40:] >= threshold))
    # Conformal: at least 0.9 on average; floor(41 * 0.1) = 4 gives 1 - 4/41.
    assert np.mean(kept) >= 0.9
    assert np.mean(kept) == pytest.approx(1 - 4 / 41, abs=0.01)


def test_site_threshold_refuses_too_few_cases_and_says_how_many():
    with pytest.raises(ValueError, match=r"18 pneumonia cases are too few.*least 19"):
        site_threshold(np.linspace(0, 1, 18), 0.95)


# ------------------------------------------------------------------- adaptation


def test_adapt_recalibrates_chooses_and_leaves_the_model_alone(site_model, local_cases):
    X, y = local_cases
    before = (site_model.threshold_, site_model.calibration_)
    adapted = quietly(adapt_to_site, site_model, X, y, min_recall=0.95)
    assert (site_model.threshold_, site_model.calibration_) == before
    assert site_model.adaptations_ == ()
    assert adapted.model_ is not site_model.model_
    np.testing.assert_array_equal(
        adapted.network_outputs(X)[0], site_model.network_outputs(X)[0]
    )
    (record,) = adapted.adaptations_
    assert adapted.threshold_ == pytest.approx(record["threshold"])
    assert adapted.calibration_ == pytest.approx(tuple(record["calibration"]))
    assert adapted.training_prevalence_ == record["prevalence"] == 0.5
    assert record["n_images"] == 120 and record["n_pneumonia"] == 60
    assert record["previous_threshold"] == pytest.approx(site_model.threshold_)
    called = adapted.predict(X) == 1
    # The conformal threshold keeps at least the target on the cases it saw.
    assert called[y == 1].mean() >= 0.95
    low, high = record["recall_interval"]
    assert low <= record["recall"] <= high
    assert len(adapted.population_reference_.scores) == 120
    assert json.dumps(record)  # a model file stores it as JSON


def test_adapt_counts_patients_and_folds_by_patient(site_model, local_cases):
    X, y = local_cases
    # Two images per patient, of one class.
    groups = np.where(y == 1, 1000 + np.arange(120) // 2, np.arange(120) // 2)
    adapted = quietly(adapt_to_site, site_model, X, y, groups=groups)
    assert adapted.adaptations_[-1]["n_patients"] == len(np.unique(groups))


def test_adapting_twice_keeps_both_records(site_model, local_cases):
    X, y = local_cases
    once = quietly(adapt_to_site, site_model, X[:60], y[:60], min_recall=0.9)
    twice = quietly(adapt_to_site, once, X[60:], y[60:], min_recall=0.9)
    first, second = twice.adaptations_
    assert first == once.adaptations_[0]
    assert second["n_images"] == 60
    assert second["previous_threshold"] == pytest.approx(once.threshold_)


def test_adapt_takes_a_pipeline_of_files(site_model, local_cases, tmp_path):
    from synthetic import write_images

    X, y = local_cases
    paths = write_images(tmp_path, X, y)
    pipe = Pipeline([("load", ImageLoader(image_size=16)), ("cnn", site_model)])
    adapted = quietly(adapt_to_site, pipe, paths, y)
    assert isinstance(adapted, Pipeline) and adapted[-1] is not site_model
    assert adapted[-1].adaptations_[-1]["n_images"] == 120


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.r_[0:30, 60:75], "15 pneumonia cases.*at least 19"),
        (np.r_[0:5, 60:120], "5 normal images"),
        (np.r_[60:120], "0 normal images"),
    ],
)
def test_adapt_refuses_too_few_local_cases(site_model, local_cases, rows, message):
    X, y = local_cases
    order = np.argsort(y, kind="stable")  # normals first, then pneumonia
    X, y = X[order][rows], y[order][rows]
    with pytest.raises(ValueError, match=f"Too few local cases.*{message}"):
        adapt_to_site(site_model, X, y)


def test_adapt_refuses_labels_the_model_does_not_know(site_model, local_cases):
    X, y = local_cases
    with pytest.raises(ValueError, match=r"labels \['PNEUMONIA'\].*\[0, 1\]"):
        adapt_to_site(site_model, X, np.where(y == 1, "PNEUMONIA", "0"))


def test_adapt_warns_when_the_site_disagrees_with_validation(site_model, local_cases):
    X, y = local_cases
    claimed = copy.copy(site_model)
    claimed.validation_report_ = {**site_model.validation_report_, "specificity": 0.0}
    with pytest.warns(SiteShiftWarning, match="specificity.*0.0% on its validation"):
        adapt_to_site(claimed, X, y)


def test_an_adapted_model_file_keeps_the_adaptation(site_model, local_cases, tmp_path):
    X, y = local_cases
    adapted = quietly(adapt_to_site, site_model, X, y)
    save_model(adapted, tmp_path / "site.pneumoclf", key="a key of sixteen bytes")
    loaded = load_model(tmp_path / "site.pneumoclf", key="a key of sixteen bytes")
    assert loaded.adaptations_ == adapted.adaptations_
    np.testing.assert_array_equal(
        loaded.population_reference_.scores, adapted.population_reference_.scores
    )
    np.testing.assert_array_equal(loaded.predict_proba(X), adapted.predict_proba(X))
    assert loaded.threshold_ == adapted.threshold_


def test_adaptation_card_appends_a_section(site_model, local_cases):
    X, y = local_cases
    record = quietly(adapt_to_site, site_model, X, y).adaptations_[-1]
    card = adaptation_card(record, "# Model card\n\ntext\n")
    assert card.startswith("# Model card\n\ntext\n\n## Adaptation to a site (")
    assert f"{record['threshold']:.4f} now" in card
    assert record["network_sha256"] in card


# ------------------------------------------------------------------- shift check


def test_check_site_is_quiet_on_the_same_population(site_model):
    X, _ = blob_images(120, 16, seed=11)
    finding = check_site(site_model, X)
    assert not finding.shifted and finding.p_value >= 0.1
    assert finding.n_images == 120
    assert abs(finding.estimated_prevalence - 0.5) < 0.15
    assert "No sign" in finding.message


def test_check_site_fires_on_images_the_model_sees_otherwise(site_model):
    X, _ = blob_images(120, 16, seed=11)
    finding = check_site(site_model, X**2)  # darker: a gamma of 2
    assert finding.shifted and finding.p_value < 0.01
    assert "differ from the population" in finding.message
    assert set(json.loads(json.dumps(finding._asdict()))) >= {
        "shifted", "p_value", "estimated_prevalence"
    }  # fmt: skip


def test_check_site_after_adaptation_compares_with_the_local_images(
    site_model, local_cases
):
    X, y = local_cases
    darker = X**2
    adapted = quietly(adapt_to_site, site_model, darker[:60], y[:60], min_recall=0.9)
    assert len(adapted.population_reference_.scores) == 60
    assert check_site(site_model, darker[60:]).shifted
    assert not check_site(adapted, darker[60:]).shifted


def test_check_site_refuses_a_small_batch(site_model):
    X, _ = blob_images(MIN_BATCH - 1, 16, seed=3)
    with pytest.raises(ValueError, match=f"{MIN_BATCH - 1} images are too few.*30"):
        check_site(site_model, X)


def test_check_site_needs_a_reference(site_model):
    bare = copy.copy(site_model)
    bare.population_reference_ = None
    with pytest.raises(ValueError, match="keeps no population reference"):
        check_site(bare, blob_images(40, 16)[0])


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_estimate_prevalence_holds_when_the_classes_move(share):
    rng = np.random.default_rng(0)
    reference = np.r_[rng.normal(-5, 1.5, 300), rng.normal(6, 2, 300)]
    labels = np.arange(600) >= 300
    n_pneumonia = int(share * 400)
    # Normals score far higher than in the reference: a correction of the
    # reference's prevalence would count many of them as pneumonia.
    batch = np.r_[rng.normal(-1, 2, 400 - n_pneumonia), rng.normal(7, 2, n_pneumonia)]
    assert estimate_prevalence(batch, reference, labels) == pytest.approx(
        share, abs=0.05
    )


# ------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def site_model_file(site_model, tmp_path_factory):
    from pneumoclf.persistence import save_model

    path = tmp_path_factory.mktemp("site") / "model.pneumoclf"
    save_model(Pipeline([("load", ImageLoader(image_size=16)), ("cnn", site_model)]),
               path)  # fmt: skip
    return path


def _run(capsys, *argv):
    from pneumoclf.cli import main

    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


@pytest.mark.parametrize("darker", [False, True], ids=["same", "darker"])
def test_predict_warns_when_a_folder_differs_from_the_model_population(
    site_model_file, tmp_path, capsys, monkeypatch, darker
):
    from synthetic import write_images

    monkeypatch.delenv("PNEUMOCLF_MODEL_KEY", raising=False)
    X, y = blob_images(60, 16, seed=11)
    # Dimmed to 80%, a third of them still pass the input check, and the model
    # sees those unlike its reference.
    write_images(tmp_path, X * 0.8 if darker else X, y)
    _, _, err = _run(capsys, "predict", site_model_file, tmp_path)
    warned = "images differ from the population the model was fitted for" in err
    assert warned == darker


def test_adapt_names_an_unreadable_local_file(site_model_file, tmp_path, capsys):
    from synthetic import write_split

    write_split(tmp_path / "local", 30, seed=5)
    broken = tmp_path / "local" / "NORMAL" / "IM-9999-0001.jpeg"
    broken.write_bytes(b"not a jpeg")
    status, _, err = _run(
        capsys, "adapt", site_model_file, tmp_path / "local", "-o", tmp_path / "s"
    )
    assert status == 1
    assert "IM-9999-0001.jpeg" in err and "could not be read" in err
    assert not (tmp_path / "s").exists()
