import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import fbeta_score, recall_score, roc_auc_score
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    TunedThresholdClassifierCV,
    cross_validate,
)

from pneumoclf.metrics import (
    choose_threshold,
    clinical_report,
    format_clinical_report,
    make_recall_weighted_scorer,
    make_specificity_at_recall_scorer,
    recall_weighted_score,
    specificity_at_recall_score,
    specificity_score,
    wilson_interval,
)

# 3 normal, 5 pneumonia; predictions: 1 false alarm, 1 missed pneumonia.
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 1, 1])
Y_PRED = np.array([0, 0, 1, 0, 1, 1, 1, 1])
Y_SCORE = np.array([0.1, 0.3, 0.6, 0.4, 0.5, 0.7, 0.8, 0.9])

LABEL_KINDS = {
    "int": (0, 1),
    "bool": (False, True),
    "str": ("NORMAL", "PNEUMONIA"),
}


def as_labels(mask, kind):
    negative, positive = LABEL_KINDS[kind]
    return np.where(np.asarray(mask, dtype=bool), positive, negative).tolist()


def predict_at(y_score, threshold):
    return (np.asarray(y_score) >= threshold).astype(int)


# ------------------------------------------------------------------ plain metrics


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_specificity_score_by_hand(kind):
    y_true, y_pred = as_labels(Y_TRUE, kind), as_labels(Y_PRED, kind)
    assert specificity_score(y_true, y_pred) == pytest.approx(2 / 3)


def test_specificity_score_explicit_pos_label_swaps_the_classes():
    # with 0 as the positive class, specificity is the recall of label 1
    assert specificity_score(Y_TRUE, Y_PRED, pos_label=0) == pytest.approx(4 / 5)


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_recall_weighted_score_by_hand(kind):
    # tp=4, fp=1, fn=1: F2 = 5*4 / (4*5 + 5) = 0.8; specificity 2/3 passes 0.5
    y_true, y_pred = as_labels(Y_TRUE, kind), as_labels(Y_PRED, kind)
    assert recall_weighted_score(y_true, y_pred) == pytest.approx(0.8)
    assert recall_weighted_score(y_true, y_pred) == pytest.approx(
        fbeta_score(Y_TRUE, Y_PRED, beta=2)
    )


def test_recall_weighted_score_beta_one_is_f1():
    assert recall_weighted_score(Y_TRUE, Y_PRED, beta=1) == pytest.approx(0.8)
    y_pred = [0, 0, 0, 0, 0, 1, 1, 1]  # tp=3, fp=0, fn=2
    assert recall_weighted_score(Y_TRUE, y_pred, beta=1) == pytest.approx(0.75)
    assert recall_weighted_score(Y_TRUE, y_pred, beta=3) == pytest.approx(
        10 * 3 / (10 * 3 + 9 * 2)
    )


def test_recall_weighted_score_penalises_low_specificity():
    y_pred = [0, 1, 1, 1, 1, 1, 1, 1]  # specificity 1/3 < 0.5
    assert recall_weighted_score(Y_TRUE, y_pred) == pytest.approx(1 / 3 - 0.5)
    assert recall_weighted_score(Y_TRUE, y_pred, min_specificity=0.3) > 0


def test_always_pneumonia_wins_plain_f2_but_loses_with_the_guard():
    # 74% prevalence: F2 of "always pneumonia" is 5p / (4p + 1)
    y_true = np.r_[np.zeros(26, int), np.ones(74, int)]
    always = np.ones(100, int)
    assert recall_weighted_score(y_true, always, min_specificity=0) == pytest.approx(
        5 * 0.74 / (4 * 0.74 + 1)
    )
    assert recall_weighted_score(y_true, always) == pytest.approx(-0.5)
    # a sensible classifier: misses 4 pneumonias, 8 false alarms
    sensible = y_true.copy()
    sensible[:8] = 1
    sensible[26:30] = 0
    assert recall_weighted_score(y_true, sensible) > recall_weighted_score(
        y_true, always
    )


def test_specificity_at_recall_score_by_hand():
    # recall 4/5 = 0.8, specificity 2/3
    assert specificity_at_recall_score(Y_TRUE, Y_PRED, min_recall=0.8) == (
        pytest.approx(2 / 3)
    )
    assert specificity_at_recall_score(Y_TRUE, Y_PRED, min_recall=0.9) == (
        pytest.approx(0.8 - 1)
    )
    # among failures the higher recall ranks higher
    worse = [0, 0, 0, 0, 0, 1, 1, 1]
    assert specificity_at_recall_score(
        Y_TRUE, worse, min_recall=0.9
    ) < specificity_at_recall_score(Y_TRUE, Y_PRED, min_recall=0.9)


def test_scores_with_a_single_class_count_missing_cases_as_perfect():
    # no normal case: no false alarm is possible, specificity counts as 1
    assert recall_weighted_score([1, 1, 1], [1, 1, 1]) == 1.0
    # no pneumonia: recall counts as 1, the score is the specificity
    assert specificity_at_recall_score(["NORMAL"] * 2, ["NORMAL", "PNEUMONIA"]) == 0.5
    assert recall_weighted_score([False, False], [False, False]) == 1.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kwargs", "message"),
    [
        ([0, 1, 2], [0, 1, 2], {}, "3 distinct labels"),
        ([0, 1], [0, 1], {"pos_label": 2}, "pos_label=2"),
        ([5, 5], [5, 5], {}, "single label 5"),
        ([0, 1], [0, 1, 1], {}, "inconsistent numbers"),
        ([], [], {}, "empty"),
        ([0, 1], [0, 1], {"beta": 0}, "beta"),
        ([0, 1], [0, 1], {"min_specificity": 1.5}, "min_specificity"),
    ],
)
def test_recall_weighted_score_rejects_bad_input(y_true, y_pred, kwargs, message):
    with pytest.raises(ValueError, match=message):
        recall_weighted_score(y_true, y_pred, **kwargs)


def test_single_unknown_label_works_with_explicit_pos_label():
    assert recall_weighted_score([5, 5], [5, 5], pos_label=5) == 1.0


# ------------------------------------------------------------- choose_threshold


def test_choose_threshold_by_hand():
    # thresholds, (tp, fp): .9 (1,0) .8 (2,0) .7 (3,0) .6 (3,1) .5 (4,1) .4 (5,1)
    # .3 (5,2) .1 (5,3); F2 = 5 tp / (20 + tp + fp), specificity (3 - fp) / 3
    # .4 -> 25/26 with specificity 2/3; .3 fails the specificity guard
    assert choose_threshold(Y_TRUE, Y_SCORE) == 0.4
    assert choose_threshold(Y_TRUE, Y_SCORE, min_specificity=0.9) == 0.7
    # recall >= 0.8 is first reached at 0.5 (specificity 2/3); 0.6 has recall 3/5
    assert choose_threshold(Y_TRUE, Y_SCORE, min_recall=0.8) == 0.5
    assert choose_threshold(Y_TRUE, Y_SCORE, min_recall=0.6) == 0.7
    assert choose_threshold(Y_TRUE, Y_SCORE, min_recall=1.0) == 0.4


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_choose_threshold_accepts_every_label_kind(kind):
    assert choose_threshold(as_labels(Y_TRUE, kind), Y_SCORE) == 0.4


def test_choose_threshold_breaks_ties_towards_the_highest_threshold():
    # with min_recall=0.5 every threshold from 0.8 down keeps specificity 1
    y_true = [0, 1, 1, 1, 1]
    y_score = [0.1, 0.5, 0.6, 0.8, 0.9]
    assert choose_threshold(y_true, y_score, min_recall=0.5) == 0.8


def test_choose_threshold_is_consistent_with_the_scorers():
    rng = np.random.default_rng(0)
    y_true = rng.random(300) < 0.74
    y_score = np.clip(0.35 * y_true + rng.random(300) * 0.65, 0, 1)
    X = y_score.reshape(-1, 1)

    class Thresholded(ClassifierMixin, BaseEstimator):
        """Classifier whose single feature is the score: predicts X >= threshold."""

        def __init__(self, threshold):
            self.threshold = threshold
            self.classes_ = np.array([False, True])

        def predict(self, X):
            return X[:, 0] >= self.threshold

    for kwargs, scorer in [
        ({}, make_recall_weighted_scorer()),
        ({"min_recall": 0.95}, make_specificity_at_recall_scorer(0.95)),
    ]:
        best = choose_threshold(y_true, y_score, **kwargs)
        all_scores = [scorer(Thresholded(t), X, y_true) for t in np.unique(y_score)]
        assert scorer(Thresholded(best), X, y_true) == max(all_scores)


# --------------------------------------------------------------- clinical report


def test_clinical_report_by_hand():
    report = clinical_report(Y_TRUE, Y_SCORE, threshold=0.5)
    assert report == pytest.approx(
        {
            "n": 8,
            "prevalence": 5 / 8,
            "threshold": 0.5,
            "roc_auc": 13 / 15,  # the normal 0.6 outranks the pneumonias 0.4, 0.5
            "recall": 4 / 5,
            "specificity": 2 / 3,
            "precision": 4 / 5,
            "npv": 2 / 3,  # TN / (TN + FN)
            "f2": 0.8,
            "accuracy": 6 / 8,
            "fp_rate": 1 / 8,
            "fn_rate": 1 / 8,
            "tp": 4,
            "fp": 1,
            "tn": 2,
            "fn": 1,
        }
    )
    assert [type(value) for value in report.values()] == [
        int,
        *[float] * 11,
        *[int] * 4,
    ]
    json.dumps(report, allow_nan=False)


def test_clinical_report_with_string_labels_and_explicit_pos_label():
    y_true = as_labels(Y_TRUE, "str")
    by_default = clinical_report(y_true, Y_SCORE)
    explicit = clinical_report(y_true, Y_SCORE, pos_label="PNEUMONIA")
    assert by_default == explicit


def test_clinical_report_single_class_gives_nan_where_undefined():
    report = clinical_report(["PNEUMONIA"] * 3, [0.2, 0.6, 0.9])
    assert math.isnan(report["roc_auc"])
    assert math.isnan(report["specificity"])
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["fn"] == 1

    report = clinical_report([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(report["recall"])
    assert math.isnan(report["f2"])
    assert report["specificity"] == 1.0
    assert report["precision"] == 0.0


def test_clinical_report_nothing_predicted_positive_has_zero_precision(recwarn):
    report = clinical_report([0, 1, 1], [0.1, 0.2, 0.3], threshold=0.9)
    assert report["precision"] == 0.0
    assert report["recall"] == 0.0
    assert report["fn_rate"] == pytest.approx(2 / 3)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize(
    ("y_true", "y_score", "kwargs", "message"),
    [
        ([0, 1], [0.5], {}, "inconsistent numbers"),
        ([0, 1], [0.5, np.nan], {}, "1 NaN or infinite"),
        ([0, 1], [0.5, np.inf], {}, "1 NaN or infinite"),
        ([0, 1], [-0.1, 0.5], {}, r"\[0, 1\]"),
        ([0, 1], [0.5, 1.2], {}, r"\[0, 1\]"),
        ([0, 1, 2], [0.1, 0.2, 0.3], {}, "3 distinct labels"),
        ([0, 1], [0.1, 0.2], {"threshold": 2}, "threshold"),
        ([0, 1], [[0.9, 0.1], [0.2, 0.8]], {}, "1d array"),
    ],
)
def test_clinical_report_rejects_bad_input(y_true, y_score, kwargs, message):
    with pytest.raises(ValueError, match=message):
        clinical_report(y_true, y_score, **kwargs)


def test_format_clinical_report():
    text = format_clinical_report(clinical_report(Y_TRUE, Y_SCORE))
    lines = text.splitlines()
    assert lines[0].startswith("Cases") and "62.50%" in lines[0]
    assert "Recall           80.00%  (sensitivity)" in lines
    assert "Specificity      66.67%" in lines
    assert "False positives       1  (12.50% of all cases)" in lines
    # values are right-aligned in one column
    assert len({len(line.split("  (")[0]) for line in lines}) == 1


def test_format_clinical_report_shows_undefined_figures_as_na():
    text = format_clinical_report(clinical_report([1, 1], [0.3, 0.8]))
    assert "ROC AUC              n/a" in text.splitlines()


# ------------------------------------------------------------ property tests


@st.composite
def labels_and_scores(draw, min_size=2, max_size=40):
    n = draw(st.integers(min_size, max_size))
    y_true = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    # a coarse grid of scores makes ties common
    grid = st.integers(0, 20).map(lambda k: k / 20)
    y_score = np.array(draw(st.lists(grid, min_size=n, max_size=n)))
    return y_true, y_score


fractions = st.floats(0, 1)
betas = st.floats(0.25, 4)


@settings(max_examples=60, deadline=None)
@given(data=labels_and_scores(), beta=betas, min_specificity=fractions)
def test_recall_weighted_score_range_and_permutation_invariance(
    data, beta, min_specificity
):
    y_true, y_score = data
    y_pred = y_score >= 0.5
    score = recall_weighted_score(
        y_true, y_pred, beta=beta, min_specificity=min_specificity
    )
    assert -min_specificity <= score <= 1
    order = np.random.default_rng(0).permutation(len(y_true))
    assert recall_weighted_score(
        y_true[order], y_pred[order], beta=beta, min_specificity=min_specificity
    ) == pytest.approx(score)


@settings(max_examples=60, deadline=None)
@given(data=labels_and_scores(), min_recall=fractions)
def test_specificity_at_recall_score_range_and_constraint(data, min_recall):
    y_true, y_score = data
    y_pred = y_score >= 0.5
    score = specificity_at_recall_score(y_true, y_pred, min_recall=min_recall)
    assert -1 <= score <= 1
    recall = recall_score(y_true, y_pred, zero_division=1.0)
    assert (score >= 0) == (recall >= min_recall)


@settings(max_examples=60, deadline=None)
@given(data=labels_and_scores(), beta=betas, min_specificity=fractions)
def test_perfect_predictions_score_one(data, beta, min_specificity):
    y_true, _ = data
    assert recall_weighted_score(
        y_true, y_true, beta=beta, min_specificity=min_specificity
    ) == pytest.approx(1.0)
    assert specificity_at_recall_score(y_true, y_true) == 1.0


@settings(max_examples=60, deadline=None)
@given(data=labels_and_scores(), min_specificity=st.floats(0.01, 1))
def test_always_pneumonia_never_beats_an_admissible_predictor(data, min_specificity):
    y_true, y_score = data
    if y_true.all():
        return  # no normal case: "always pneumonia" is then the right answer
    y_pred = y_score >= 0.5
    always = np.ones_like(y_true)
    if specificity_score(y_true, y_pred) >= min_specificity:
        assert recall_weighted_score(
            y_true, y_pred, min_specificity=min_specificity
        ) > recall_weighted_score(y_true, always, min_specificity=min_specificity)


def _best_over_candidates(score_function, y_true, y_score, **kwargs):
    candidates = np.unique(y_score)
    scores = [score_function(y_true, y_score >= t, **kwargs) for t in candidates]
    best = max(scores)
    highest_best = max(t for t, s in zip(candidates, scores, strict=True) if s == best)
    return best, highest_best


@settings(max_examples=80, deadline=None)
@given(data=labels_and_scores(), beta=betas, min_specificity=fractions)
def test_choose_threshold_maximises_recall_weighted_score(data, beta, min_specificity):
    y_true, y_score = data
    kwargs = {"beta": beta, "min_specificity": min_specificity}
    threshold = choose_threshold(y_true, y_score, **kwargs)
    best, highest_best = _best_over_candidates(
        recall_weighted_score, y_true, y_score, **kwargs
    )
    assert recall_weighted_score(y_true, y_score >= threshold, **kwargs) == best
    assert threshold == highest_best


@settings(max_examples=80, deadline=None)
@given(data=labels_and_scores(), min_recall=fractions)
def test_choose_threshold_maximises_specificity_at_recall(data, min_recall):
    y_true, y_score = data
    threshold = choose_threshold(y_true, y_score, min_recall=min_recall)
    best, highest_best = _best_over_candidates(
        specificity_at_recall_score, y_true, y_score, min_recall=min_recall
    )
    y_pred = y_score >= threshold
    assert specificity_at_recall_score(y_true, y_pred, min_recall=min_recall) == best
    assert threshold == highest_best
    if y_true.any():
        assert recall_score(y_true, y_pred) >= min_recall


@settings(max_examples=60, deadline=None)
@given(data=labels_and_scores(), threshold=fractions)
def test_clinical_report_invariants(data, threshold):
    y_true, y_score = data
    report = clinical_report(y_true, y_score, threshold)
    n = report["n"]
    assert report["tp"] + report["fp"] + report["tn"] + report["fn"] == n
    assert report["prevalence"] == pytest.approx((report["tp"] + report["fn"]) / n)
    assert report["accuracy"] == pytest.approx(
        1 - report["fp_rate"] - report["fn_rate"]
    )
    if y_true.any():
        # missed pneumonias as a share of all cases
        assert report["fn_rate"] == pytest.approx(
            (1 - report["recall"]) * report["prevalence"]
        )
    if not y_true.all():
        assert report["fp_rate"] == pytest.approx(
            (1 - report["specificity"]) * (1 - report["prevalence"])
        )
    for key in ("recall", "specificity", "precision", "f2", "accuracy", "roc_auc"):
        assert math.isnan(report[key]) or 0 <= report[key] <= 1


# ------------------------------------------------------ inside scikit-learn tools


@pytest.fixture(scope="module")
def xray_like_data():
    X, y = make_classification(
        n_samples=300, n_features=6, weights=[0.26], flip_y=0.05, random_state=0
    )
    return X, np.where(y == 1, "PNEUMONIA", "NORMAL")


@pytest.mark.parametrize(
    "scorer", [make_recall_weighted_scorer(), make_specificity_at_recall_scorer(0.9)]
)
def test_scorers_in_cross_validate_with_string_labels(xray_like_data, scorer):
    X, y = xray_like_data
    scores = cross_validate(LogisticRegression(), X, y, scoring=scorer)["test_score"]
    assert np.isfinite(scores).all()
    assert ((scores >= -1) & (scores <= 1)).all()


def test_recall_weighted_scorer_matches_the_score_function(xray_like_data):
    X, y = xray_like_data
    model = LogisticRegression().fit(X, y)
    scorer = make_recall_weighted_scorer(beta=3, min_specificity=0.2)
    assert scorer(model, X, y) == recall_weighted_score(
        y, model.predict(X), beta=3, min_specificity=0.2
    )


def test_recall_weighted_scorer_in_grid_search(xray_like_data):
    X, y = xray_like_data
    search = GridSearchCV(
        LogisticRegression(),
        {"C": [0.01, 1.0]},
        scoring=make_recall_weighted_scorer(),
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert 0.5 < search.best_score_ <= 1


@pytest.mark.parametrize(
    "scorer",
    [
        make_recall_weighted_scorer(beta=3, min_specificity=0.4),
        make_specificity_at_recall_scorer(0.9, pos_label="PNEUMONIA"),
    ],
)
def test_scorers_pickle(xray_like_data, scorer):
    X, y = xray_like_data
    model = LogisticRegression().fit(X, y)
    restored = pickle.loads(pickle.dumps(scorer))
    assert restored(model, X, y) == scorer(model, X, y)


def test_tuned_threshold_reaches_the_required_recall(xray_like_data):
    X, y = xray_like_data
    tuned = TunedThresholdClassifierCV(
        LogisticRegression(), scoring=make_specificity_at_recall_scorer(0.95)
    ).fit(X, y)
    y_pred = tuned.predict(X)
    # the threshold is cross-validated, so allow a little slack on training data
    assert recall_score(y, y_pred, pos_label="PNEUMONIA") >= 0.93
    assert specificity_score(y, y_pred) > 0.3


def test_tuned_threshold_with_recall_weighted_scorer_lowers_the_threshold():
    X, y = make_classification(
        n_samples=400, n_features=6, weights=[0.3], class_sep=0.6, random_state=1
    )
    tuned = TunedThresholdClassifierCV(
        LogisticRegression(), scoring=make_recall_weighted_scorer()
    ).fit(X, y)
    assert tuned.best_threshold_ < 0.5
    assert tuned.best_score_ > 0


def test_recall_weighted_scorer_in_optuna_search(xray_like_data):
    optuna = pytest.importorskip("optuna")
    optuna_integration = pytest.importorskip("optuna_integration")
    pytest.importorskip("pandas")  # OptunaSearchCV needs it
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = xray_like_data
    search = optuna_integration.OptunaSearchCV(
        LogisticRegression(),
        {"C": optuna.distributions.FloatDistribution(1e-2, 1e2, log=True)},
        scoring=make_recall_weighted_scorer(),
        n_trials=3,
        cv=3,
        random_state=0,
    ).fit(X, y)
    assert 0 < search.best_score_ <= 1


# ----------------------------------------------------------- invalid parameters

FOUR_LABELS = [0, 0, 1, 1]
FOUR_SCORES = [0.1, 0.6, 0.4, 0.9]
METRIC_CALLS = {
    "choose_threshold": lambda **kw: choose_threshold(FOUR_LABELS, FOUR_SCORES, **kw),
    "clinical_report": lambda **kw: clinical_report(FOUR_LABELS, FOUR_SCORES, **kw),
    "recall_weighted_score": lambda **kw: recall_weighted_score(
        FOUR_LABELS, FOUR_LABELS, **kw
    ),
    "specificity_at_recall_score": (
        lambda **kw: specificity_at_recall_score(FOUR_LABELS, FOUR_LABELS, **kw)
    ),
    "make_recall_weighted_scorer": make_recall_weighted_scorer,
    "make_specificity_at_recall_scorer": make_specificity_at_recall_scorer,
}


@pytest.mark.parametrize(
    ("function", "kwargs"),
    [
        ("choose_threshold", {"beta": "2"}), ("choose_threshold", {"beta": 0}),
        ("choose_threshold", {"beta": np.inf}), ("choose_threshold", {"beta": True}),
        ("choose_threshold", {"min_specificity": True}),
        ("choose_threshold", {"min_specificity": -0.1}),
        ("choose_threshold", {"min_recall": 1.5}),
        ("choose_threshold", {"min_recall": np.nan}),
        ("clinical_report", {"threshold": None}),
        ("clinical_report", {"threshold": "0.5"}),
        ("clinical_report", {"threshold": np.nan}),
        ("clinical_report", {"threshold": True}),
        ("recall_weighted_score", {"beta": -1}),
        ("recall_weighted_score", {"min_specificity": 2}),
        ("specificity_at_recall_score", {"min_recall": "0.9"}),
        ("make_recall_weighted_scorer", {"beta": 0}),
        ("make_recall_weighted_scorer", {"min_specificity": np.nan}),
        ("make_specificity_at_recall_scorer", {"min_recall": -1}),
    ],
    ids=str,
)  # fmt: skip
def test_invalid_metric_parameters_are_named(function, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        METRIC_CALLS[function](**kwargs)


# ---------------------------------------------------- hostile scores and labels

SCORE_FUNCTIONS = {
    "choose_threshold": choose_threshold,
    "clinical_report": clinical_report,
}


@pytest.mark.parametrize("function", SCORE_FUNCTIONS)
@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        (FOUR_LABELS, [0.1, np.nan, 0.4, 0.9], "1 NaN or infinite"),
        (FOUR_LABELS, [0.1, 1.6, 0.4, 0.9], r"in \[0, 1\], got values in \[0.1, 1.6\]"),
        (FOUR_LABELS, [-0.1, 0.6, 0.4, 0.9], r"in \[0, 1\]"),
        (FOUR_LABELS, np.column_stack([1 - np.array(FOUR_SCORES), FOUR_SCORES]),
         r"y_score should be a 1d array .* predict_proba\(X\)\[:, 1\]"),
        (FOUR_LABELS, 0.5, r"y_score should be a 1d array .* shape \(\)"),
        (FOUR_LABELS, ["low", "high", "low", "high"], "could not convert string"),
        ([0, None, 1, 1], FOUR_SCORES, "y_true holds missing labels .* positions 1"),
        ([0, np.nan, 1, 1], FOUR_SCORES, "y_true holds missing labels"),
        (["NORMAL ", "NORMAL ", " PNEUMONIA", " PNEUMONIA"], FOUR_SCORES,
         "'NORMAL ', would be taken as pneumonia"),
        (["a", "a", "b", "b"], FOUR_SCORES, None),
    ],
    ids=["nan", "above-1", "below-0", "proba-2-columns", "scalar", "strings",
         "none-label", "nan-label", "whitespace-labels", "unknown-pos-label"],
)  # fmt: skip
def test_bad_scores_and_labels_are_named(function, y_true, y_score, message):
    kwargs = {} if message is not None else {"pos_label": "c"}
    message = message or r"pos_label='c' is not one of the labels \['a', 'b'\]"

    with pytest.raises(ValueError, match=message):
        SCORE_FUNCTIONS[function](y_true, y_score, **kwargs)


def test_missing_predicted_labels_are_named():
    with pytest.raises(ValueError, match=r"y_pred holds missing labels .* positions 2"):
        recall_weighted_score([0, 1, 1], [0, 1, None])


@pytest.mark.parametrize(
    "convert",
    [
        list,
        lambda values: pd.Series(values, index=[7, 3, 5, 1]),
        lambda values: np.array(values).reshape(-1, 1),
    ],
    ids=["list", "series-with-shuffled-index", "column"],
)
def test_scores_in_any_one_dimensional_form_give_the_same_results(convert):
    y_true, y_score = convert(FOUR_LABELS), convert(FOUR_SCORES)

    assert choose_threshold(y_true, y_score) == choose_threshold(
        np.array(FOUR_LABELS), np.array(FOUR_SCORES)
    )
    assert clinical_report(y_true, y_score) == clinical_report(FOUR_LABELS, FOUR_SCORES)


def test_padded_labels_that_sort_right_or_come_with_pos_label_give_the_same_results():
    padded = ["NORMAL ", "NORMAL ", "PNEUMONIA ", "PNEUMONIA "]
    swapped = ["NORMAL ", "NORMAL ", " PNEUMONIA", " PNEUMONIA"]
    expected = clinical_report(FOUR_LABELS, FOUR_SCORES)

    assert clinical_report(padded, FOUR_SCORES) == expected
    assert clinical_report(swapped, FOUR_SCORES, pos_label=" PNEUMONIA") == expected


def test_a_scorer_with_an_unknown_pos_label_names_it():
    y = np.array(["NORMAL", "PNEUMONIA"] * 4)
    X = np.arange(8).reshape(-1, 1)
    dummy = DummyClassifier(strategy="stratified", random_state=0).fit(X, y)

    with pytest.raises(ValueError, match=r"pos_label=.?PNEUMONA.? is not"):
        make_recall_weighted_scorer(pos_label="PNEUMONA")(dummy, X, y)


# --- sample weights ---------------------------------------------------------------


@pytest.fixture(scope="module")
def weighted_cases():
    rng = np.random.default_rng(10)  # a draw where every figure moves with weights
    y_true = rng.integers(0, 2, 60)
    y_score = np.clip(y_true * 0.4 + rng.random(60) * 0.6, 0, 1).round(2)
    weights = rng.integers(0, 4, 60)
    return y_true, y_score, weights


def _repeated(weights, *arrays):
    return [np.repeat(array, weights) for array in arrays]


@pytest.mark.parametrize(
    "score",
    [
        lambda y, s, **kw: specificity_score(y, s >= 0.5, **kw),
        lambda y, s, **kw: recall_weighted_score(y, s >= 0.5, **kw),
        lambda y, s, **kw: specificity_at_recall_score(y, s >= 0.5, **kw),
        lambda y, s, **kw: choose_threshold(y, s, **kw),
        lambda y, s, **kw: choose_threshold(y, s, min_recall=0.9, **kw),
    ],
    ids=["specificity", "recall_weighted", "specificity_at_recall",
         "threshold", "threshold_at_recall"],
)  # fmt: skip
def test_an_integer_weight_counts_as_that_many_copies(weighted_cases, score):
    y_true, y_score, weights = weighted_cases

    weighted = score(y_true, y_score, sample_weight=weights)

    assert weighted == score(*_repeated(weights, y_true, y_score))
    assert weighted != score(y_true, y_score)  # the weights matter here


def test_the_clinical_report_weighs_every_figure(weighted_cases):
    y_true, y_score, weights = weighted_cases

    weighted = clinical_report(y_true, y_score, 0.5, sample_weight=weights)
    repeated = clinical_report(*_repeated(weights, y_true, y_score), 0.5)

    assert weighted.keys() == repeated.keys()
    for name, value in repeated.items():
        assert weighted[name] == pytest.approx(value, rel=1e-12), name


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([-1.0] + [1.0] * 59, "Negative values in data"),
        ([1.0] * 3, r"sample_weight\.shape == \(3,\), expected \(60,\)"),
    ],
)
def test_bad_weights_are_refused(weighted_cases, weights, message):
    y_true, y_score, _ = weighted_cases
    with pytest.raises(ValueError, match=message):
        clinical_report(y_true, y_score, sample_weight=weights)


@pytest.mark.parametrize(
    "make_scorer",
    [make_recall_weighted_scorer, make_specificity_at_recall_scorer],
)
def test_scorers_take_routed_weights_in_searches(make_scorer):
    X, y = make_classification(n_samples=300, weights=[0.3], random_state=0)
    weights = np.random.default_rng(0).integers(1, 4, len(y)).astype(float)
    folds = list(StratifiedKFold(3).split(X, y))
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer().set_score_request(sample_weight=True)
        model = LogisticRegression().set_fit_request(sample_weight=False)
        scores = cross_validate(
            model, X, y, cv=folds, scoring=scorer, params={"sample_weight": weights}
        )["test_score"]
        search = GridSearchCV(model, {"C": [0.1, 1.0]}, cv=folds, scoring=scorer).fit(
            X, y, sample_weight=weights
        )

    expected = [
        scorer(LogisticRegression().fit(X[train], y[train]), X[test], y[test],
               sample_weight=weights[test])
        for train, test in folds
    ]  # fmt: skip
    np.testing.assert_allclose(scores, expected)
    unweighted = [
        make_scorer()(LogisticRegression().fit(X[train], y[train]), X[test], y[test])
        for train, test in folds
    ]
    assert not np.allclose(expected, unweighted)
    assert search.cv_results_["mean_test_score"][1] == pytest.approx(np.mean(expected))


# --- confidence intervals ---------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [(8, 10, (0.4902, 0.9433)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)),
     (50, 100, (0.4038, 0.5962))],
)  # fmt: skip
def test_wilson_intervals_match_published_values(successes, n, expected):
    np.testing.assert_allclose(wilson_interval(successes, n), expected, atol=1e-4)


def test_a_proportion_of_nothing_has_no_interval():
    assert np.isnan(wilson_interval(0, 0)).all()


@pytest.fixture(scope="module")
def scored_cases():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 80)
    y_score = np.clip(y_true * 0.3 + rng.random(80) * 0.7, 0, 1)
    return y_true, y_score


def test_the_report_gives_wilson_intervals_of_its_proportions(scored_cases):
    report = clinical_report(*scored_cases, 0.5, confidence=0.9, random_state=0)
    tp, fp, tn, fn = (report[key] for key in ("tp", "fp", "tn", "fn"))

    assert report["confidence"] == 0.9
    assert report["intervals"]["recall"] == wilson_interval(tp, tp + fn, 0.9)
    assert report["intervals"]["specificity"] == wilson_interval(tn, tn + fp, 0.9)
    assert report["intervals"]["precision"] == wilson_interval(tp, tp + fp, 0.9)
    assert report["intervals"]["npv"] == wilson_interval(tn, tn + fn, 0.9)
    assert report["npv"] == tn / (tn + fn)


def test_the_auc_interval_is_a_seeded_bootstrap_around_the_auc(scored_cases):
    first = clinical_report(*scored_cases, confidence=0.95, random_state=0)
    again = clinical_report(*scored_cases, confidence=0.95, random_state=0)
    other = clinical_report(*scored_cases, confidence=0.95, random_state=1)
    narrower = clinical_report(*scored_cases, confidence=0.5, random_state=0)

    low, high = first["intervals"]["roc_auc"]
    assert low < first["roc_auc"] < high
    assert again["intervals"] == first["intervals"]
    assert other["intervals"]["roc_auc"] != [low, high]
    n_low, n_high = narrower["intervals"]["roc_auc"]
    assert low < n_low < n_high < high


def test_the_bootstrap_draws_whole_patients(scored_cases):
    y_true, y_score = scored_cases
    # Every patient twice, with identical images: drawing patients draws pairs,
    # so each resample's AUC is that of the same draw of single cases.
    twice = clinical_report(
        np.repeat(y_true, 2), np.repeat(y_score, 2), confidence=0.95,
        groups=np.repeat(np.arange(len(y_true)), 2), random_state=0,
    )  # fmt: skip
    once = clinical_report(y_true, y_score, confidence=0.95, random_state=0)
    by_image = clinical_report(
        np.repeat(y_true, 2), np.repeat(y_score, 2), confidence=0.95, random_state=0
    )

    assert twice["intervals"]["roc_auc"] == pytest.approx(once["intervals"]["roc_auc"])
    by_image_width = np.diff(by_image["intervals"]["roc_auc"])[0]
    assert by_image_width < np.diff(twice["intervals"]["roc_auc"])[0]


def test_the_bootstrap_auc_is_the_auc_of_each_resample(scored_cases):
    y_true, y_score = scored_cases
    report = clinical_report(
        y_true, y_score, confidence=0.9, n_resamples=50, random_state=0
    )

    # The same draws of cases (one patient each), scored by scikit-learn.
    replay = np.random.RandomState(0)
    draws = [replay.randint(0, len(y_true), len(y_true)) for _ in range(50)]
    aucs = [roc_auc_score(y_true[rows], y_score[rows]) for rows in draws]
    np.testing.assert_allclose(
        report["intervals"]["roc_auc"], np.quantile(aucs, [0.05, 0.95]), rtol=1e-12
    )


def test_intervals_need_unweighted_cases(scored_cases):
    with pytest.raises(ValueError, match="need unweighted cases"):
        clinical_report(
            *scored_cases, confidence=0.95, sample_weight=np.ones(len(scored_cases[0]))
        )


# ------------------------------------------------------------------- refer band


def test_referral_bounds_reach_the_share_of_the_way_to_each_end():
    from pneumoclf.metrics import referral_bounds

    assert referral_bounds(0.8, 0.25) == pytest.approx((0.6, 0.85))
    assert referral_bounds(0.1, 0.5) == pytest.approx((0.05, 0.55))
    assert referral_bounds(0.3, 0.0) == (0.3, 0.3)


@pytest.mark.parametrize("band", [1.0, -0.1, 1.5])
def test_referral_bounds_refuse_a_band_outside_0_1(band):
    from pneumoclf.metrics import referral_bounds

    with pytest.raises(ValueError, match="refer_band must be in"):
        referral_bounds(0.5, band)


def test_referral_mask_refers_only_inside_the_band():
    from pneumoclf.metrics import referral_mask

    scores = np.array([0.0, 0.24, 0.25, 0.49, 0.5, 0.74, 0.75, 1.0])
    mask = referral_mask(scores, 0.5, 0.5)  # refers [0.25, 0.75)
    assert mask.tolist() == [False, False, True, True, True, True, False, False]
    assert not referral_mask(scores, 0.5, 0.0).any()


def test_referral_tradeoff_refers_more_and_labels_the_rest_better():
    from pneumoclf.metrics import referral_tradeoff

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(500), np.ones(500)].astype(int)
    scores = np.clip(
        np.r_[rng.normal(0.3, 0.15, 500), rng.normal(0.7, 0.15, 500)], 0, 1
    )
    rows = referral_tradeoff(y, scores, 0.5, bands=(0.0, 0.1, 0.3, 0.6))
    rates = [row["refer_rate"] for row in rows]
    assert rates[0] == 0 and rates == sorted(rates) and rates[-1] > 0.5
    for row in rows:
        kept = (scores < row["low"]) | (scores >= row["high"])
        assert row["n_referred"] == int((~kept).sum())
        called = scores >= 0.5
        assert row["recall"] == pytest.approx(called[kept & (y == 1)].mean())
        assert row["specificity"] == pytest.approx((~called)[kept & (y == 0)].mean())
    assert rows[-1]["recall"] > rows[0]["recall"]
    assert rows[-1]["specificity"] > rows[0]["specificity"]


def test_clinical_report_with_a_refer_band():
    report = clinical_report(
        [0, 0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9],
        refer_band=0.3,
    )  # fmt: skip
    assert report["recall"] == 0.75  # every case still counts in the main figures
    assert report["referral"] == {
        "refer_band": 0.3, "low": 0.35, "high": 0.65, "n_referred": 2,
        "refer_rate": 0.25, "recall": 1.0, "specificity": 1.0,
    }  # fmt: skip
    text = format_clinical_report(report)
    assert "Referred                     2  (25.00% of all cases, probability" in text
    assert "Specificity, labelled  100.00%" in text
    with pytest.raises(ValueError, match="refer band needs unweighted"):
        clinical_report([0, 1], [0.2, 0.8], refer_band=0.1, sample_weight=[1, 2])


def test_one_patient_gives_no_auc_interval_rather_than_a_zero_width_one():
    y_true, y_score = [0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    with pytest.warns(UserWarning, match="belong to 1 patient"):
        report = clinical_report(
            y_true, y_score, confidence=0.95, groups=["ANON"] * 6, random_state=0
        )
    assert np.isnan(report["intervals"]["roc_auc"]).all()
    assert report["roc_auc"] == pytest.approx(8 / 9)
