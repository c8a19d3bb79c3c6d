"""Parameter constraints of the classifier that scikit-learn has no word for.

scikit-learn accepts only its own constraint classes in ``_parameter_constraints``,
so these extend ``Options`` (a value of a type, among allowed ones) and decide
for themselves which values are allowed.
"""

from numbers import Integral, Real

import keras
import numpy as np

from .._compat import Interval, Options, StrOptions
from ..architecture import HEADS, OPTIMIZERS


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


#: The constraints of every ``PneumoniaCNNClassifier`` parameter.
PARAMETER_CONSTRAINTS = {
    "n_conv_blocks": [Interval(Integral, 1, None, closed="left")],
    "filters": [Interval(Integral, 1, None, closed="left")],
    "kernel_size": [Interval(Integral, 1, None, closed="left")],
    "dense_units": [Interval(Integral, 1, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "batch_norm": ["boolean"],
    "padding": [StrOptions({"auto", "valid", "same"})],
    "head": [StrOptions(set(HEADS))],
    "optimizer": [StrOptions(set(OPTIMIZERS))],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    "lr_schedule": [StrOptions({"constant", "plateau"})],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "epochs": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "monitor": [StrOptions({"loss", "auc"})],
    "patience": [Interval(Integral, 1, None, closed="left")],
    "class_weight": [StrOptions({"balanced"}), ClassWeights(), None],
    "rotation": [Interval(Real, 0, 0.5, closed="both")],
    "zoom": [Interval(Real, 0, 1, closed="left")],
    "shift": [Interval(Real, 0, 1, closed="left")],
    "contrast": [Interval(Real, 0, 1, closed="both")],
    "blur": [Interval(Real, 0, None, closed="left")],
    "threshold": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
    "target_recall": [Interval(Real, 0, 1, closed="right"), None],
    "calibration": [StrOptions({"platt", "temperature"}), None],
    "prevalence": [Interval(Real, 0, 1, closed="neither"), None],
    "input_check": [Interval(Real, 0, 1, closed="right"), None],
    "warm_start": ["boolean"],
    "callbacks": [KerasCallbacks(), None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}
