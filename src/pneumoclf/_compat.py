"""Private: every import of a private scikit-learn name, in one place.

Parameter validation (``_param_validation``), the fit context and a few input
checks are not scikit-learn's public API and have moved between releases; when
they move again, this file alone changes.
"""

from sklearn.base import _fit_context as fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.validation import _check_feature_names as check_feature_names
from sklearn.utils.validation import _check_n_features as check_n_features
from sklearn.utils.validation import _check_sample_weight as check_sample_weight

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "check_feature_names",
    "check_n_features",
    "check_sample_weight",
    "fit_context",
    "validate_parameters",
    "validate_params",
]


def validate_parameters(estimator):
    """Check an estimator's parameters against its ``_parameter_constraints``.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, the estimator and what it must be.
    """
    estimator._validate_params()
