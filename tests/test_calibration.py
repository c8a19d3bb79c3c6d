"""Calibration and prevalence maps of the probabilities, against known values."""

import numpy as np
import pytest
from scipy.special import expit, logit

from pneumoclf._calibration import (
    calibrated,
    fit_calibration,
    to_logits,
    with_prevalence,
)


def _drawn(slope, intercept, n=20_000, seed=0):
    """Network scores and labels whose true probability is sigmoid(a z + b)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < expit(slope * z + intercept)).astype(int)
    return expit(z), y


@pytest.mark.parametrize(("slope", "intercept"), [(0.5, 0.0), (2.0, -1.0), (1.0, 1.5)])
def test_platt_scaling_recovers_the_true_map(slope, intercept):
    scores, y = _drawn(slope, intercept)
    fitted_slope, fitted_intercept = fit_calibration(scores, y, "platt")
    assert fitted_slope == pytest.approx(slope, rel=0.1)
    assert fitted_intercept == pytest.approx(intercept, abs=0.1)


def test_temperature_scaling_fits_the_slope_only():
    scores, y = _drawn(0.5, 0.0)
    slope, intercept = fit_calibration(scores, y, "temperature")
    assert intercept == 0.0
    assert slope == pytest.approx(0.5, rel=0.1)


def test_few_cases_never_give_certainties():
    # Perfectly separated: plain maximum likelihood would send the slope to infinity.
    scores = np.array([0.2, 0.3, 0.4, 0.6, 0.7, 0.8])
    y = np.array([0, 0, 0, 1, 1, 1])
    probabilities = calibrated(scores, fit_calibration(scores, y, "platt"))
    assert probabilities.min() > 0.1
    assert probabilities.max() < 0.9


def test_calibration_keeps_the_order():
    scores, y = _drawn(2.0, -1.0, n=500)
    probabilities = calibrated(scores, fit_calibration(scores, y, "platt"))
    assert np.array_equal(np.argsort(probabilities), np.argsort(scores))


def test_no_calibration_is_the_identity():
    scores = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    np.testing.assert_allclose(calibrated(scores, None), scores)


def test_a_prevalence_change_is_bayes_rule_on_the_odds():
    # Even odds where a tenth is sick become 1 to 9.
    assert with_prevalence(np.array([0.5]), trained=0.5, deployed=0.1)[0] == (
        pytest.approx(0.1)
    )
    p = np.array([0.2, 0.7])
    odds = p / (1 - p) * (0.3 / 0.7) / (0.74 / 0.26)
    np.testing.assert_allclose(
        with_prevalence(p, trained=0.74, deployed=0.3), odds / (1 + odds)
    )


def test_a_prevalence_change_and_back_is_the_identity():
    p = np.linspace(0.01, 0.99, 9)
    there = with_prevalence(p, trained=0.74, deployed=0.1)
    np.testing.assert_allclose(with_prevalence(there, trained=0.1, deployed=0.74), p)
    np.testing.assert_array_equal(with_prevalence(p, trained=0.74, deployed=None), p)


def test_logits_stay_finite_at_zero_and_one():
    z = to_logits(np.array([0.0, 1.0]))
    assert np.all(np.isfinite(z))
    assert z[0] == pytest.approx(logit(1e-7))
