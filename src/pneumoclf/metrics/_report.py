"""The clinical report: figures with their confidence intervals, as text or rows."""

import itertools
import warnings

import numpy as np
from scipy.stats import binomtest, rankdata
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    fbeta_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_consistent_length,
    column_or_1d,
)

from .._utils import is_pneumonia as decide_pneumonia
from ._labels import _check_fraction, _pneumonia_mask_and_scores, _shared_parameters
from ._referral import decided_figures, referral_bounds, referral_mask
from ._scores import _checked_weights, specificity_score

# ------------------------------------------------------------------------- report


@_shared_parameters
def clinical_report(
    y_true,
    y_score,
    threshold=0.5,
    *,
    pos_label=None,
    sample_weight=None,
    confidence=None,
    groups=None,
    n_resamples=1000,
    random_state=None,
    refer_band=None,
):
    """The figures a clinician reads at one operating point.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: 0/1, bool or ``"NORMAL"``/``"PNEUMONIA"``.
    y_score : array-like of shape (n_samples,)
        Predicted pneumonia probabilities, in [0, 1].
    threshold : float in [0, 1], default=0.5
        A case is called pneumonia when ``y_score >= threshold``.
    pos_label : int, bool or str, default=None
        %(pos_label)s
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each case. Every figure is then weighted, ``n`` and the
        confusion counts included (sums of weights, as floats); None weighs
        every case 1.
    confidence : float in (0, 1), default=None
        With a level such as 0.95, the report adds ``intervals``: confidence
        intervals of ``recall``, ``specificity``, ``precision`` and ``npv``
        (Wilson score intervals of the proportions) and of ``roc_auc`` (a
        percentile bootstrap that resamples whole patients). Not with
        ``sample_weight``.
    groups : array-like of shape (n_samples,), default=None
        Patient of each case, for the bootstrap: a patient's images are drawn
        together. None means one patient per case.
    n_resamples : int, default=1000
        Resamples of the bootstrap.
    random_state : int, RandomState instance or None, default=None
        Seeds the bootstrap.
    refer_band : float in [0, 1) or None, default=None
        With a band, the report adds ``referral``: the cases whose probability
        lies in it (:func:`referral_mask`) go to a reader, and the figures of
        the cases the model labels are reported apart.

    Returns
    -------
    dict
        Plain Python numbers, ready for ``json.dumps``:

        * ``n``, ``prevalence``: number of cases, share of pneumonia among them;
        * ``threshold``: the operating point;
        * ``roc_auc``: area under the ROC curve of `y_score`;
        * ``recall`` (sensitivity), ``specificity``, ``precision``, ``npv``
          (negative predictive value), ``f2``, ``accuracy``;
        * ``fp_rate``, ``fn_rate``: false positives and false negatives as shares
          of *all* cases (FP / n, FN / n), the way published results often
          report them; they are not the false positive rate FP / (FP + TN);
        * ``tp``, ``fp``, ``tn``, ``fn``: the confusion counts;
        * with ``confidence``: ``confidence`` and ``intervals``, a dict of
          ``[low, high]`` lists keyed by figure;
        * with ``refer_band``: ``referral``, a dict of ``refer_band``, ``low``,
          ``high``, ``n_referred``, ``refer_rate``, and the ``recall`` and
          ``specificity`` of the cases not referred. The other figures count
          every case.

        A figure that the data cannot define is NaN rather than an error:
        ``roc_auc`` when `y_true` holds a single class, ``recall`` without any
        pneumonia, ``specificity`` without any normal case, ``f2`` when neither
        `y_true` nor the predictions hold pneumonia. ``precision`` is 0.0 when no
        case is predicted pneumonia.

    Raises
    ------
    ValueError
        If the lengths differ, `y_score` holds NaN, infinite or out-of-range
        values, `y_true` holds more than two labels, or `threshold` is not in
        [0, 1].

    Examples
    --------
    >>> from pneumoclf.metrics import clinical_report
    >>> report = clinical_report([0, 0, 0, 0, 1, 1, 1, 1],
    ...                          [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    >>> report["recall"], report["specificity"], report["fp_rate"]
    (0.75, 0.75, 0.125)
    """
    _check_fraction("threshold", threshold)
    is_pneumonia, y_score = _pneumonia_mask_and_scores(y_true, y_score, pos_label)
    weights = _checked_weights(sample_weight, is_pneumonia)
    predicted = decide_pneumonia(y_score, threshold)
    count = int if weights is None else float
    tn, fp, fn, tp = (
        count(n_cases)
        for n_cases in confusion_matrix(
            is_pneumonia, predicted, labels=[False, True], sample_weight=weights
        ).ravel()
    )
    n = tn + fp + fn + tp
    if n == 0:
        raise ValueError("sample_weight is zero for every case: nothing to report.")
    both_classes = tp + fn > 0 and tn + fp > 0
    weighted = {"sample_weight": weights}
    report = {
        "n": n,
        "prevalence": (tp + fn) / n,
        "threshold": float(threshold),
        "roc_auc": (
            float(roc_auc_score(is_pneumonia, y_score, **weighted))
            if both_classes
            else np.nan
        ),
        "recall": float(
            recall_score(is_pneumonia, predicted, zero_division=np.nan, **weighted)
        ),
        "specificity": specificity_score(
            is_pneumonia, predicted, pos_label=True, zero_division=np.nan, **weighted
        ),
        "precision": float(
            precision_score(is_pneumonia, predicted, zero_division=0.0, **weighted)
        ),
        "npv": tn / (tn + fn) if tn + fn else np.nan,
        "f2": float(
            fbeta_score(
                is_pneumonia, predicted, beta=2, zero_division=np.nan, **weighted
            )
        ),
        "accuracy": float(accuracy_score(is_pneumonia, predicted, **weighted)),
        "fp_rate": fp / n,
        "fn_rate": fn / n,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
    if confidence is not None:
        if weights is not None:
            raise ValueError("confidence intervals need unweighted cases.")
        _check_fraction("confidence", confidence)
        report["confidence"] = float(confidence)
        report["intervals"] = {
            "roc_auc": _bootstrap_auc(
                is_pneumonia, y_score, groups, confidence, n_resamples, random_state
            ),
            "recall": wilson_interval(tp, tp + fn, confidence),
            "specificity": wilson_interval(tn, tn + fp, confidence),
            "precision": wilson_interval(tp, tp + fp, confidence),
            "npv": wilson_interval(tn, tn + fn, confidence),
        }
    if refer_band is not None:
        if weights is not None:
            raise ValueError("a refer band needs unweighted cases.")
        referred = referral_mask(y_score, threshold, refer_band)
        low, high = referral_bounds(threshold, refer_band)
        report["referral"] = {
            "refer_band": float(refer_band),
            "low": low,
            "high": high,
            **decided_figures(is_pneumonia, predicted, referred),
        }
    return report


def wilson_interval(successes, n, confidence=0.95):
    """Wilson score interval of a proportion of ``successes`` out of ``n``.

    Unlike the normal approximation, it stays within [0, 1] and keeps its
    coverage for proportions near 0 or 1 and for small ``n``; computed by
    ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``.

    Parameters
    ----------
    successes : int
        Number of successes.
    n : int
        Number of trials.
    confidence : float in (0, 1), default=0.95
        Confidence level.

    Returns
    -------
    list of 2 float
        ``[low, high]``; NaN for both when ``n`` is 0.

    Examples
    --------
    >>> from pneumoclf.metrics import wilson_interval
    >>> [round(bound, 4) for bound in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n == 0:
        return [np.nan, np.nan]
    bounds = binomtest(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return [float(bounds.low), float(bounds.high)]


# Fewest patients whose resampling can vary at all.
_MIN_BOOTSTRAP_PATIENTS = 2


def _bootstrap_auc(is_pneumonia, y_score, groups, confidence, n_resamples, seed):
    """Percentile bootstrap interval of the ROC AUC, resampling whole patients."""
    groups = np.arange(len(is_pneumonia)) if groups is None else column_or_1d(groups)
    check_consistent_length(is_pneumonia, groups)
    _, patient = np.unique(groups, return_inverse=True)
    n_patients = int(patient.max()) + 1
    if n_patients < _MIN_BOOTSTRAP_PATIENTS:
        warnings.warn(
            f"The {len(groups)} cases belong to {n_patients} patient(s) by their "
            "groups: resampling whole patients cannot estimate the ROC AUC's "
            "uncertainty, so it has no interval (rather than one of zero width). "
            "Are the patient IDs real? De-identified DICOM files often share one "
            "PatientID; give the true patients as groups.",
            UserWarning,
            stacklevel=3,
        )
        return [np.nan, np.nan]
    by_patient = np.argsort(patient, kind="stable")
    starts = np.searchsorted(patient[by_patient], np.arange(patient.max() + 2))
    rows_of = [by_patient[a:b] for a, b in itertools.pairwise(starts)]
    rng = check_random_state(seed)
    aucs = []
    for _ in range(n_resamples):
        chosen = rng.randint(0, len(rows_of), len(rows_of))
        rows = np.concatenate([rows_of[k] for k in chosen])
        labels = is_pneumonia[rows]
        n_pneumonia = int(labels.sum())
        if n_pneumonia in (0, len(rows)):
            continue  # a resample of one class has no AUC
        # The AUC is the Mann-Whitney U of the pneumonia scores over n+ n-, from
        # average ranks: the same value as roc_auc_score, 20 times faster.
        ranks = rankdata(y_score[rows])
        u = ranks[labels].sum() - n_pneumonia * (n_pneumonia + 1) / 2
        aucs.append(u / (n_pneumonia * (len(rows) - n_pneumonia)))
    if not aucs:
        return [np.nan, np.nan]
    low, high = np.quantile(aucs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return [float(low), float(high)]


def _percent(value):
    return "n/a" if np.isnan(value) else f"{100 * value:.2f}%"


def _decimal(value):
    return "n/a" if np.isnan(value) else f"{value:.4f}"


def format_clinical_report(report):
    """Aligned, human-readable text of a :func:`clinical_report`.

    Parameters
    ----------
    report : dict
        The output of :func:`clinical_report`.

    Returns
    -------
    str
        One figure a line; rates as percentages with two decimals, and the
        confidence interval of each figure that has one.

    Examples
    --------
    >>> from pneumoclf.metrics import clinical_report, format_clinical_report
    >>> report = clinical_report([0, 0, 0, 0, 1, 1, 1, 1],
    ...                          [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    >>> print(format_clinical_report(report))
    Cases                 8  (prevalence 50.00%)
    Threshold        0.5000
    ROC AUC          0.9375
    Recall           75.00%  (sensitivity)
    Specificity      75.00%
    Precision        75.00%
    NPV              75.00%
    F2               0.7500
    Accuracy         75.00%
    False positives       1  (12.50% of all cases)
    False negatives       1  (12.50% of all cases)
    True positives        3
    True negatives        3

    With ``confidence``, each interval follows its figure:

    >>> report = clinical_report([0, 0, 0, 0, 1, 1, 1, 1],
    ...                          [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9],
    ...                          confidence=0.95, random_state=0)
    >>> print(format_clinical_report(report).splitlines()[3])
    Recall           75.00%  (sensitivity; 95% CI 30.06% to 95.44%)
    """
    rows = clinical_report_rows(report)
    label_width = max(len(label) for label, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = []
    for label, value, note in rows:
        line = f"{label:<{label_width}}  {value:>{value_width}}"
        lines.append(f"{line}  ({note})" if note else line)
    return "\n".join(lines)


def clinical_report_rows(report):
    """The lines of :func:`format_clinical_report` as ``(label, value, note)``.

    Parameters
    ----------
    report : dict
        The output of :func:`clinical_report`.

    Returns
    -------
    list of tuple of 3 str
        The figure's name, its value as shown, and a note (its interval, when
        the report has one; empty when there is nothing to add).

    Examples
    --------
    >>> from pneumoclf.metrics import clinical_report, clinical_report_rows
    >>> clinical_report_rows(clinical_report([0, 1, 1], [0.2, 0.7, 0.4]))[3]
    ('Recall', '50.00%', 'sensitivity')
    """
    interval = _interval_notes(report)
    return [
        ("Cases", str(report["n"]), f"prevalence {_percent(report['prevalence'])}"),
        ("Threshold", _decimal(report["threshold"]), ""),
        ("ROC AUC", _decimal(report["roc_auc"]), interval("roc_auc", _decimal)),
        (
            "Recall",
            _percent(report["recall"]),
            interval("recall", _percent, "sensitivity"),
        ),
        (
            "Specificity",
            _percent(report["specificity"]),
            interval("specificity", _percent),
        ),
        ("Precision", _percent(report["precision"]), interval("precision", _percent)),
        ("NPV", _percent(report["npv"]), interval("npv", _percent)),
        ("F2", _decimal(report["f2"]), ""),
        ("Accuracy", _percent(report["accuracy"]), ""),
        ("False positives", str(report["fp"]), _of_all(report["fp_rate"])),
        ("False negatives", str(report["fn"]), _of_all(report["fn_rate"])),
        ("True positives", str(report["tp"]), ""),
        ("True negatives", str(report["tn"]), ""),
        *_referral_rows(report.get("referral")),
    ]


def _referral_rows(referral):
    if referral is None:
        return []
    band = f"{_decimal(referral['low'])} to {_decimal(referral['high'])}"
    return [
        ("Referred", str(referral["n_referred"]), f"{_percent(referral['refer_rate'])}"
         f" of all cases, probability {band}"),
        ("Recall, labelled", _percent(referral["recall"]), "cases not referred"),
        ("Specificity, labelled", _percent(referral["specificity"]),
         "cases not referred"),
    ]  # fmt: skip


def _interval_notes(report):
    """A function giving the note of a figure: its interval, when the report has one."""
    intervals = report.get("intervals", {})
    level = f"{100 * report.get('confidence', 0):g}% CI"

    def note(name, show, prefix=""):
        parts = [prefix] if prefix else []
        if name in intervals:
            low, high = (show(bound) for bound in intervals[name])
            parts.append(f"{level} {low} to {high}")
        return "; ".join(parts)

    return note


def _of_all(rate):
    return f"{_percent(rate)} of all cases"
