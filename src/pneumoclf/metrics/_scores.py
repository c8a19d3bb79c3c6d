"""Specificity, the recall-weighted score, specificity at a recall; their scorers."""

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    make_scorer,
    recall_score,
)

from .._compat import check_sample_weight
from ._labels import _check_beta, _check_fraction, _pneumonia_masks, _shared_parameters

# ------------------------------------------------------------------- plain metrics


@_shared_parameters
def specificity_score(
    y_true, y_pred, *, pos_label=None, zero_division="warn", sample_weight=None
):
    """Specificity: the share of normal cases predicted normal, TN / (TN + FP).

    It is the recall of the negative class, computed with
    :func:`sklearn.metrics.recall_score`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: 0/1, bool or ``"NORMAL"``/``"PNEUMONIA"``.
    y_pred : array-like of shape (n_samples,)
        Predicted labels, of the same kind as `y_true`.
    pos_label : int, bool or str, default=None
        %(pos_label)s
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        The value returned when `y_true` holds no normal case, as in
        :func:`sklearn.metrics.recall_score`.
    sample_weight : array-like of shape (n_samples,), default=None
        %(sample_weight)s

    Returns
    -------
    float
        Specificity in [0, 1].

    Examples
    --------
    >>> from pneumoclf.metrics import specificity_score
    >>> specificity_score(["NORMAL", "NORMAL", "NORMAL", "NORMAL", "PNEUMONIA"],
    ...                   ["NORMAL", "PNEUMONIA", "NORMAL", "NORMAL", "PNEUMONIA"])
    0.75
    """
    is_pneumonia, predicted_pneumonia = _pneumonia_masks(y_true, y_pred, pos_label)
    return float(
        recall_score(
            ~is_pneumonia,
            ~predicted_pneumonia,
            pos_label=True,
            zero_division=zero_division,
            sample_weight=_checked_weights(sample_weight, is_pneumonia),
        )
    )


def _rate(numerator, denominator):
    """numerator / denominator, taken as 1.0 where there is no case to measure."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(
        numerator, denominator, out=np.ones_like(numerator), where=denominator > 0
    )


def _recall_weighted_from_counts(tp, fp, tn, fn, *, beta, min_specificity):
    """Vectorised core of :func:`recall_weighted_score` on confusion counts."""
    beta2 = beta**2
    f_beta = _rate((1 + beta2) * tp, beta2 * (tp + fn) + (tp + fp))
    specificity = _rate(tn, tn + fp)
    return np.where(
        specificity >= min_specificity, f_beta, specificity - min_specificity
    )


def _specificity_at_recall_from_counts(tp, fp, tn, fn, *, min_recall):
    """Vectorised core of :func:`specificity_at_recall_score` on confusion counts."""
    recall = _rate(tp, tp + fn)
    specificity = _rate(tn, tn + fp)
    return np.where(recall >= min_recall, specificity, recall - 1)


def _confusion_counts(y_true, y_pred, pos_label, sample_weight):
    is_pneumonia, predicted_pneumonia = _pneumonia_masks(y_true, y_pred, pos_label)
    tn, fp, fn, tp = confusion_matrix(
        is_pneumonia,
        predicted_pneumonia,
        labels=[False, True],
        sample_weight=_checked_weights(sample_weight, is_pneumonia),
    ).ravel()
    return tp, fp, tn, fn


def _checked_weights(sample_weight, y):
    """``sample_weight`` as floats, one finite non-negative weight per case."""
    if sample_weight is None:
        return None
    return check_sample_weight(sample_weight, y, ensure_non_negative=True)


@_shared_parameters
def recall_weighted_score(
    y_true, y_pred, *, beta=2.0, min_specificity=0.5, pos_label=None, sample_weight=None
):
    """F-beta on the pneumonia class, guarded against the "always pneumonia" answer.

    When the predictions' specificity is at least `min_specificity`, the score is the
    F-beta score of the pneumonia class (``beta > 1`` weighs recall above
    precision). Otherwise the score is the penalty
    ``specificity - min_specificity``, which is negative: below every admissible
    operating point (whose F-beta is >= 0), while among inadmissible ones the higher
    specificity still ranks higher, which keeps a search moving towards the
    admissible region.

    A rate with no case to measure counts as perfect: with no normal case in
    `y_true` the specificity is 1.0 (no false alarm is possible), and when `y_true`
    and `y_pred` hold no pneumonia at all the F-beta is 1.0.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: 0/1, bool or ``"NORMAL"``/``"PNEUMONIA"``.
    y_pred : array-like of shape (n_samples,)
        Predicted labels, of the same kind as `y_true`.
    beta : float, default=2.0
        Weight of recall relative to precision in the F-beta score.
    min_specificity : float in [0, 1], default=0.5
        The specificity below which an operating point is rejected. 0 turns the
        guard off (plain F-beta).
    pos_label : int, bool or str, default=None
        %(pos_label)s
    sample_weight : array-like of shape (n_samples,), default=None
        %(sample_weight)s

    Returns
    -------
    float
        The F-beta score in [0, 1], or the penalty in [-min_specificity, 0).

    See Also
    --------
    make_recall_weighted_scorer : This score as a scikit-learn scorer.

    Examples
    --------
    >>> from pneumoclf.metrics import recall_weighted_score
    >>> y_true = [0, 0, 0, 1, 1, 1]
    >>> recall_weighted_score(y_true, [0, 0, 1, 1, 1, 1])
    0.9375
    >>> recall_weighted_score(y_true, [1, 1, 1, 1, 1, 1])  # specificity 0
    -0.5
    """
    _check_beta(beta)
    _check_fraction("min_specificity", min_specificity)
    tp, fp, tn, fn = _confusion_counts(y_true, y_pred, pos_label, sample_weight)
    return float(
        _recall_weighted_from_counts(
            tp, fp, tn, fn, beta=beta, min_specificity=min_specificity
        )
    )


@_shared_parameters
def specificity_at_recall_score(
    y_true, y_pred, *, min_recall=0.97, pos_label=None, sample_weight=None
):
    """Specificity of predictions that reach a required recall.

    When the predictions' recall on the pneumonia class is at least `min_recall`,
    the score is their specificity. Otherwise it is ``recall - 1``, which is
    negative: below every admissible operating point (whose specificity is >= 0),
    while among those that miss the target the higher recall still ranks higher.

    A rate with no case to measure counts as perfect: with no pneumonia in `y_true`
    the recall is 1.0, and with no normal case the specificity is 1.0.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: 0/1, bool or ``"NORMAL"``/``"PNEUMONIA"``.
    y_pred : array-like of shape (n_samples,)
        Predicted labels, of the same kind as `y_true`.
    min_recall : float in [0, 1], default=0.97
        The recall (sensitivity) an operating point must reach.
    pos_label : int, bool or str, default=None
        %(pos_label)s
    sample_weight : array-like of shape (n_samples,), default=None
        %(sample_weight)s

    Returns
    -------
    float
        The specificity in [0, 1], or ``recall - 1`` in [-1, 0).

    See Also
    --------
    make_specificity_at_recall_scorer : This score as a scikit-learn scorer.

    Examples
    --------
    >>> from pneumoclf.metrics import specificity_at_recall_score
    >>> y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> specificity_at_recall_score(y_true, [0, 0, 0, 1, 1, 1, 1, 1], min_recall=0.9)
    0.75
    >>> specificity_at_recall_score(y_true, [0, 0, 0, 0, 0, 1, 1, 1], min_recall=0.9)
    -0.25
    """
    _check_fraction("min_recall", min_recall)
    tp, fp, tn, fn = _confusion_counts(y_true, y_pred, pos_label, sample_weight)
    return float(
        _specificity_at_recall_from_counts(tp, fp, tn, fn, min_recall=min_recall)
    )


# ------------------------------------------------------------------------- scorers


@_shared_parameters
def make_recall_weighted_scorer(beta=2.0, *, min_specificity=0.5, pos_label=None):
    """Scorer for model selection that favours recall but rejects "always pneumonia".

    Plain F2 is not enough: a classifier that calls every X-ray pneumonia has
    recall 1 and precision equal to the prevalence ``p``, so its F2 is
    ``5p / (4p + 1)``. With the ~74% pneumonia prevalence of the usual pediatric
    chest X-ray data that is about 0.93, more than many useful classifiers reach.
    This scorer therefore returns the F-beta score only when the specificity is at
    least `min_specificity`, and a negative penalty otherwise (see
    :func:`recall_weighted_score`). The default floor of 0.5 means at least half
    of the normal cases must be recognised: far below any useful screening
    operating point, but out of reach of the degenerate answer.

    The scorer works on ``predict`` output, so it fits ``GridSearchCV``,
    ``cross_validate``, ``OptunaSearchCV`` and
    :class:`~sklearn.model_selection.TunedThresholdClassifierCV`. It pickles, so
    it also works with process-parallel searches.

    Parameters
    ----------
    beta : float, default=2.0
        Weight of recall relative to precision; ``beta > 1`` favours recall.
    min_specificity : float in [0, 1], default=0.5
        The specificity below which an operating point is rejected. 0 gives
        plain F-beta.
    pos_label : int, bool or str, default=None
        %(pos_label)s
        It is also the class whose probability scikit-learn's threshold tuning
        uses by default.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``; greater is better. Scores lie in
        ``[-min_specificity, 1]``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_val_score
    >>> from pneumoclf.metrics import make_recall_weighted_scorer
    >>> X, y = make_classification(n_samples=200, weights=[0.3], random_state=0)
    >>> scores = cross_val_score(LogisticRegression(), X, y,
    ...                          scoring=make_recall_weighted_scorer())
    >>> bool(((scores > 0.8) & (scores <= 1)).all())
    True
    """
    _check_beta(beta)
    _check_fraction("min_specificity", min_specificity)
    return make_scorer(
        recall_weighted_score,
        response_method="predict",
        beta=beta,
        min_specificity=min_specificity,
        pos_label=pos_label,
    )


@_shared_parameters
def make_specificity_at_recall_scorer(min_recall=0.97, *, pos_label=None):
    """Scorer for an operating point: the best specificity at a required recall.

    Scores the specificity of the predictions when their recall reaches
    `min_recall`, and ``recall - 1`` (negative) otherwise; see
    :func:`specificity_at_recall_score`. Meant for choosing a decision threshold
    with :class:`~sklearn.model_selection.TunedThresholdClassifierCV`, which needs
    a scorer on ``predict`` output; it also works in ``GridSearchCV`` and
    ``cross_validate``, and it pickles.

    Parameters
    ----------
    min_recall : float in [0, 1], default=0.97
        The recall (sensitivity) an operating point must reach.
    pos_label : int, bool or str, default=None
        %(pos_label)s

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``; greater is better. Scores lie in ``[-1, 1]``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import TunedThresholdClassifierCV
    >>> from pneumoclf.metrics import make_specificity_at_recall_scorer
    >>> X, y = make_classification(n_samples=400, weights=[0.3], random_state=0)
    >>> tuned = TunedThresholdClassifierCV(
    ...     LogisticRegression(), scoring=make_specificity_at_recall_scorer(0.95)
    ... ).fit(X, y)
    >>> bool(tuned.best_threshold_ < 0.5)
    True
    """
    _check_fraction("min_recall", min_recall)
    return make_scorer(
        specificity_at_recall_score,
        response_method="predict",
        min_recall=min_recall,
        pos_label=pos_label,
    )
