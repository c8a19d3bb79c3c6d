"""Private: probabilities that mean what they say.

The network's sigmoid output ranks images well but its values are not
probabilities: early stopping, class weights and a training set with 74%
pneumonia all move them. Two maps fix that, both on the logit ``z = log(p / (1 - p))``:

* **calibration**, fitted on the validation part: Platt scaling
  ``sigmoid(a z + b)`` or temperature scaling ``sigmoid(z / T)`` (``b = 0``),
  by maximum likelihood;
* **a change of prevalence** (Bayes' rule on the odds): a probability calibrated
  where the pneumonia share is ``pi`` becomes, where it is ``pi'``,
  ``sigmoid(z + logit(pi') - logit(pi))``.

Both are monotone, so neither changes the ranking (the ROC AUC), and a decision
threshold maps through them exactly.
"""

import numpy as np

# Probabilities are kept this far from 0 and 1 before taking their logit.
_EPSILON = 1e-7


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _expit(z):
    # 1 / (1 + e^-z), without overflow for any z.
    return np.exp(-np.logaddexp(0.0, -z))


def to_logits(probabilities):
    """The logits of probabilities, clipped away from 0 and 1."""
    clipped = np.clip(
        np.asarray(probabilities, dtype=np.float64), _EPSILON, 1 - _EPSILON
    )
    return _logit(clipped)


def fit_calibration(scores, y, method):
    """The ``(slope, intercept)`` on the logit that calibrates ``scores`` to ``y``.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        The network's probabilities of pneumonia on the validation part.
    y : ndarray of shape (n,)
        1 for pneumonia, 0 for normal.
    method : {"platt", "temperature"}
        Platt scaling fits slope and intercept; temperature scaling the slope only.

    Returns
    -------
    tuple of 2 float
        ``(a, b)`` of ``sigmoid(a z + b)``, with ``a > 0``, fitted to Platt's
        soft targets.
    """
    from scipy.optimize import minimize

    z = to_logits(scores)
    y = _platt_targets(np.asarray(y, dtype=np.float64))

    def negative_log_likelihood(params):
        log_slope, intercept = params
        fitted = np.exp(log_slope) * z + (intercept if method == "platt" else 0.0)
        # log(1 + e^f) - y f, computed without overflow
        return float(np.mean(np.logaddexp(0.0, fitted) - y * fitted))

    result = minimize(negative_log_likelihood, x0=[0.0, 0.0], method="Nelder-Mead")
    log_slope, intercept = result.x
    return float(np.exp(log_slope)), float(intercept) if method == "platt" else 0.0


def _platt_targets(y):
    """Platt's (1999) soft targets: no certainty a few cases cannot support.

    Pneumonia counts as ``(n1 + 1) / (n1 + 2)`` and normal as ``1 / (n0 + 2)``,
    so that a small validation part cannot drive the fit to probabilities of
    exactly 0 and 1.
    """
    n_positive = y.sum()
    n_negative = len(y) - n_positive
    return np.where(y == 1, (n_positive + 1) / (n_positive + 2), 1 / (n_negative + 2))


def calibrated(scores, calibration):
    """Apply ``calibration`` (``(a, b)`` or None) to probabilities."""
    if calibration is None:
        return np.asarray(scores, dtype=np.float64)
    slope, intercept = calibration
    return _expit(slope * to_logits(scores) + intercept)


def with_prevalence(probabilities, *, trained, deployed):
    """Move probabilities calibrated at pneumonia share ``trained`` to ``deployed``.

    A threshold moves the same way, so that its decisions stay the same.
    """
    if deployed is None or deployed == trained:
        return np.asarray(probabilities, dtype=np.float64)
    shift = _logit(deployed) - _logit(trained)
    return _expit(to_logits(probabilities) + shift)


def check_prevalence(prevalence, calibration):
    """Refuse a deployment prevalence for probabilities that are not calibrated."""
    if prevalence is not None and calibration is None:
        raise ValueError(
            f"prevalence={prevalence} needs calibrated probabilities: fit with "
            "calibration='platt' or 'temperature'."
        )
