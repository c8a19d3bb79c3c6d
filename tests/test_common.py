"""scikit-learn's own conformance checks on every public estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from pneumoclf import ImageLoader, PneumoniaCNNClassifier

# The checks feed tables far outside [0, 1] on purpose; the classifier's warning
# about unscaled images is right there, and only noise.
pytestmark = [
    pytest.mark.filterwarnings("ignore:X holds values in:UserWarning"),
    pytest.mark.usefixtures("eager_networks"),
]

CLASSIFIER_EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "stochastic mini-batch training: weighting an image twice is not the same "
        "optimisation path as showing it twice."
    ),
}


@parametrize_with_checks(
    [
        PneumoniaCNNClassifier(epochs=3, batch_size=1024, random_state=0, verbose=0),
        ImageLoader(),
    ],
    expected_failed_checks=lambda estimator: (
        CLASSIFIER_EXPECTED_FAILURES
        if isinstance(estimator, PneumoniaCNNClassifier)
        else {}
    ),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
