"""The operating threshold: the best specificity at a recall, or F2 with a guard."""

import numpy as np
from sklearn.metrics import (
    confusion_matrix_at_thresholds,
)

from ._labels import (
    _check_beta,
    _check_fraction,
    _pneumonia_mask_and_scores,
    _shared_parameters,
)
from ._scores import (
    _checked_weights,
    _recall_weighted_from_counts,
    _specificity_at_recall_from_counts,
)

# ------------------------------------------------------------------- threshold


@_shared_parameters
def choose_threshold(
    y_true,
    y_score,
    *,
    beta=2.0,
    min_specificity=0.5,
    min_recall=None,
    pos_label=None,
    sample_weight=None,
):
    """Decision threshold on the pneumonia probability that maximises a scorer.

    A case is called pneumonia when ``y_score >= threshold``. The candidates are
    the distinct values of `y_score`, so the lowest candidate flags every case.

    * With `min_recall`, the threshold maximises
      :func:`specificity_at_recall_score`: among thresholds whose recall is at
      least `min_recall`, the one with the highest specificity. The lowest
      candidate has recall 1, so such a threshold always exists when `y_true`
      holds pneumonia. `beta` and `min_specificity` are then ignored.
    * Otherwise it maximises :func:`recall_weighted_score`: the F-beta score among
      thresholds whose specificity is at least `min_specificity`; if none is, the
      threshold with the highest specificity.

    Ties go to the highest threshold, the one with fewer false alarms. The result
    is exactly consistent with the scorers: predicting ``y_score >= threshold`` on
    the same data gives the maximum, over all candidates, of the score that
    :func:`make_recall_weighted_scorer` (or
    :func:`make_specificity_at_recall_scorer`) reports. It takes O(n log n) time.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels: 0/1, bool or ``"NORMAL"``/``"PNEUMONIA"``.
    y_score : array-like of shape (n_samples,)
        Predicted pneumonia probabilities, in [0, 1].
    beta : float, default=2.0
        Weight of recall relative to precision in the F-beta score.
    min_specificity : float in [0, 1], default=0.5
        Specificity floor of the F-beta criterion.
    min_recall : float in [0, 1], default=None
        When given, use the specificity-at-recall criterion instead.
    pos_label : int, bool or str, default=None
        %(pos_label)s
    sample_weight : array-like of shape (n_samples,), default=None
        %(sample_weight)s

    Returns
    -------
    float
        The threshold, one of the values of `y_score`.

    Examples
    --------
    >>> from pneumoclf.metrics import choose_threshold
    >>> y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> y_score = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    >>> choose_threshold(y_true, y_score)
    0.4
    >>> choose_threshold(y_true, y_score, min_recall=0.75)
    0.7
    """
    _check_beta(beta)
    _check_fraction("min_specificity", min_specificity)
    if min_recall is not None:
        _check_fraction("min_recall", min_recall)
    is_pneumonia, y_score = _pneumonia_mask_and_scores(y_true, y_score, pos_label)
    tn, fp, fn, tp, thresholds = confusion_matrix_at_thresholds(
        is_pneumonia,
        y_score,
        pos_label=True,
        sample_weight=_checked_weights(sample_weight, is_pneumonia),
    )
    if min_recall is None:
        scores = _recall_weighted_from_counts(
            tp, fp, tn, fn, beta=beta, min_specificity=min_specificity
        )
    else:
        scores = _specificity_at_recall_from_counts(
            tp, fp, tn, fn, min_recall=min_recall
        )
    # thresholds decrease, and argmax returns the first maximum: the highest one.
    return float(thresholds[np.argmax(scores)])
