"""Parameter constraints of the classifier that scikit-learn has no word for.

scikit-learn accepts only its own constraint classes in ``_parameter_constraints``,
so these extend ``Options`` (a value of a type, among allowed ones) and decide
for themselves which values are allowed.
"""

from numbers import Real

import keras
import numpy as np

from .._compat import Options


class ClassWeights(Options):
    """A dict giving each class a finite, non-negative weight, and some class more."""

    def __init__(self):
        super().__init__(dict, set())

    def is_satisfied_by(self, val):
        if not isinstance(val, dict):
            return False
        weights = list(val.values())
        return all(map(_is_weight, weights)) and any(w > 0 for w in weights)

    def __str__(self):
        return "a dict of finite, non-negative class weights, some positive"


class KerasCallbacks(Options):
    """A list of Keras callbacks."""

    def __init__(self):
        super().__init__(list, set())

    def is_satisfied_by(self, val):
        return isinstance(val, list) and all(
            isinstance(callback, keras.callbacks.Callback) for callback in val
        )

    def __str__(self):
        return "a list of keras.callbacks.Callback instances"


def _is_weight(value):
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
        and value >= 0
    )
