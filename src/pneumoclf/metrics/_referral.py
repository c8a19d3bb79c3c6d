"""The refer band: images near the threshold go to a reader instead of a label."""

import numpy as np

from ._labels import _check_fraction, _pneumonia_mask_and_scores, _shared_parameters

#: Bands :func:`referral_tradeoff` shows by default.
DEFAULT_BANDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


def referral_bounds(threshold, refer_band):
    """The probabilities ``[low, high)`` that are referred around ``threshold``.

    The band reaches ``refer_band`` of the way from the threshold down to 0 and
    up to 1, so that it fits a threshold near either end.

    Parameters
    ----------
    threshold : float in [0, 1]
        The decision threshold.
    refer_band : float in [0, 1)
        Width of the band, as a share of the distance to 0 and to 1.

    Returns
    -------
    tuple of 2 float

    Examples
    --------
    >>> from pneumoclf.metrics import referral_bounds
    >>> referral_bounds(0.5, 0.5)
    (0.25, 0.75)
    """
    _check_fraction("threshold", threshold)
    if not 0 <= refer_band < 1:
        raise ValueError(f"refer_band must be in [0, 1), got {refer_band!r}.")
    return threshold * (1 - refer_band), threshold + refer_band * (1 - threshold)


def referral_mask(y_score, threshold, refer_band):
    """Which cases fall in the refer band: a reader decides them, not the model.

    Parameters
    ----------
    y_score : array-like of shape (n,)
        Pneumonia probabilities.
    threshold : float in [0, 1]
        The decision threshold.
    refer_band : float in [0, 1)
        See :func:`referral_bounds`; 0 refers nothing.

    Returns
    -------
    ndarray of shape (n,), bool

    Examples
    --------
    >>> from pneumoclf.metrics import referral_mask
    >>> referral_mask([0.1, 0.7, 0.82, 0.95], threshold=0.8, refer_band=0.25).tolist()
    [False, True, True, False]
    """
    low, high = referral_bounds(threshold, refer_band)
    y_score = np.asarray(y_score, dtype=np.float64)
    return (y_score >= low) & (y_score < high)


@_shared_parameters
def referral_tradeoff(
    y_true, y_score, threshold, *, bands=DEFAULT_BANDS, pos_label=None
):
    """What each refer band costs and gives: share referred, figures of the rest.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True labels.
    y_score : array-like of shape (n,)
        Pneumonia probabilities.
    threshold : float in [0, 1]
        The decision threshold.
    bands : sequence of float in [0, 1), default=(0, 0.05, 0.1, 0.2, 0.3, 0.5)
        The refer bands to show.
    pos_label : int, bool or str, default=None
        %(pos_label)s

    Returns
    -------
    list of dict
        One per band: ``refer_band``, ``low``, ``high``, ``n_referred``,
        ``refer_rate``, and the ``recall`` and ``specificity`` of the cases
        labelled (NaN where none of a class is left).

    Examples
    --------
    >>> from pneumoclf.metrics import referral_tradeoff
    >>> rows = referral_tradeoff([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], 0.55,
    ...                          bands=(0.0, 0.2))
    >>> [(row["refer_rate"], row["specificity"]) for row in rows]
    [(0.0, 0.5), (0.25, 1.0)]
    """
    is_pneumonia, y_score = _pneumonia_mask_and_scores(y_true, y_score, pos_label)
    called = y_score >= threshold
    rows = []
    for band in bands:
        referred = referral_mask(y_score, threshold, band)
        rows.append(
            {
                "refer_band": float(band),
                **dict(
                    zip(("low", "high"), referral_bounds(threshold, band), strict=True)
                ),
                **decided_figures(is_pneumonia, called, referred),
            }
        )
    return rows


def decided_figures(is_pneumonia, called, referred):
    """Share referred, and recall and specificity of the cases not referred."""
    kept = ~referred
    positives, negatives = kept & is_pneumonia, kept & ~is_pneumonia
    return {
        "n_referred": int(referred.sum()),
        "refer_rate": float(referred.mean()) if len(referred) else np.nan,
        "recall": float(called[positives].mean()) if positives.any() else np.nan,
        "specificity": (
            float((~called[negatives]).mean()) if negatives.any() else np.nan
        ),
    }
