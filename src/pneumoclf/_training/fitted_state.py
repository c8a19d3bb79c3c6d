"""Checks of a fitted state restored from a file: its parts must fit together."""

import keras
import numpy as np

from .._utils import check_label_order
from ..validity import InputReference, PopulationReference

#: Fitted attributes besides the network, in the order ``get_fitted_state`` gives.
FITTED_ATTRIBUTES = (
    "classes_",
    "image_shape_",
    "n_features_in_",
    "feature_names_in_",
    "chosen_threshold_",
    "calibration_",
    "training_prevalence_",
    "validation_report_",
    "history_",
    "n_epochs_",
    "input_reference_",
    "population_reference_",
    "adaptations_",
    "training_digests_",
)

_OPTIONAL_ATTRIBUTES = frozenset(
    {
        "feature_names_in_",
        "input_reference_",
        "population_reference_",
        "adaptations_",
        "training_digests_",
    }
)


def check_fitted_state(state, names=FITTED_ATTRIBUTES):
    """Refuse a fitted state whose parts are missing, unknown or disagree."""
    expected = {"model_", *names}
    missing = sorted(expected - _OPTIONAL_ATTRIBUTES - state.keys())
    unknown = sorted(state.keys() - expected)
    if missing or unknown:
        raise ValueError(
            f"fitted state: missing attributes {missing}, unknown attributes {unknown}."
        )
    image_shape = state["image_shape_"]
    check_fitted_image_shape(image_shape)
    _check_classes(state["classes_"])
    _check_network(state["model_"], image_shape)
    threshold = state["chosen_threshold_"]
    if threshold is not None and not (
        isinstance(threshold, float) and 0 <= threshold < 1
    ):
        raise ValueError(
            f"chosen_threshold_ must be None or a number in [0, 1), got {threshold!r}."
        )
    n_features = state["n_features_in_"]
    if n_features not in image_shape[:2]:
        raise ValueError(
            f"n_features_in_ = {n_features!r} fits neither side of image_shape_ "
            f"{image_shape}."
        )
    _check_calibration(state["calibration_"], state["training_prevalence_"])
    _check_validation_report(state["validation_report_"])
    n_epochs = state["n_epochs_"]
    if not (isinstance(n_epochs, int) and n_epochs >= 0):
        raise ValueError(f"n_epochs_ must be a non-negative integer, got {n_epochs!r}.")
    if not isinstance(state["history_"], dict):
        raise ValueError("history_ must be a dict of lists of numbers.")
    state["input_reference_"] = _input_reference(
        state.get("input_reference_"), state["model_"]
    )
    state["population_reference_"] = _population_reference(
        state.get("population_reference_")
    )
    state["adaptations_"] = _adaptations(state.get("adaptations_", ()))
    state["training_digests_"] = _training_digests(state.get("training_digests_"))


def _training_digests(value):
    """Sorted, distinct ``uint64`` digests, or None (a model that keeps none)."""
    if value is None:
        return None
    digests = np.asarray(value)
    if not (
        digests.ndim == 1
        and digests.dtype == np.uint64
        and np.all(digests[1:] > digests[:-1])
    ):
        raise ValueError(
            "training_digests_ must be a sorted 1-D array of distinct uint64 "
            f"digests, got {value!r:.80}."
        )
    return digests


def _input_reference(value, model):
    """``value`` as an InputReference that fits the network, or None (no check)."""
    if value is None:
        return None
    n_features = model.get_layer("dense").units
    try:
        mean, precision, threshold = value
        reference = InputReference(
            mean=np.asarray(mean, dtype=np.float64),
            precision=np.asarray(precision, dtype=np.float32),
            threshold=float(threshold),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"input_reference_ must be (mean, precision, threshold), got {error}."
        ) from None
    fits = (
        reference.mean.shape == (n_features,)
        and reference.precision.shape == (n_features, n_features)
        and np.all(np.isfinite(reference.mean))
        and np.all(np.isfinite(reference.precision))
        and np.isfinite(reference.threshold)
        and reference.threshold >= 0
    )
    if not fits:
        raise ValueError(
            f"input_reference_ must hold a finite mean of {n_features} features, a "
            f"finite {n_features} x {n_features} precision and a threshold of at "
            "least 0."
        )
    return reference


def _population_reference(value):
    """``value`` as a PopulationReference of finite, aligned arrays, or None."""
    if value is None:
        return None
    try:
        scores, pneumonia, distances = value
        reference = PopulationReference(
            scores=np.asarray(scores, dtype=np.float32),
            pneumonia=np.asarray(pneumonia),
            distances=None if distances is None else np.asarray(distances, np.float32),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            "population_reference_ must be (scores, pneumonia, distances), got "
            f"{error}."
        ) from None
    n = len(reference.scores)
    fits = (
        reference.scores.shape == (n,)
        and n > 0
        and reference.pneumonia.shape == (n,)
        and reference.pneumonia.dtype == bool
        and np.all((reference.scores >= 0) & (reference.scores <= 1))
        and (
            reference.distances is None
            or (
                reference.distances.shape == (n,)
                and np.all(np.isfinite(reference.distances))
                and np.all(reference.distances >= 0)
            )
        )
    )
    if not fits:
        raise ValueError(
            "population_reference_ must hold scores in [0, 1], one bool label per "
            "score, and None or one finite non-negative distance per score."
        )
    return reference


def _adaptations(value):
    """``value`` as a tuple of dicts (the adaptations to sites), checked."""
    if not (
        isinstance(value, (tuple, list))
        and all(isinstance(record, dict) for record in value)
    ):
        raise ValueError(f"adaptations_ must be a tuple of dicts, got {value!r}.")
    return tuple(value)


def check_fitted_image_shape(image_shape):
    """Refuse an ``image_shape_`` that is not three positive integers."""
    if not (
        isinstance(image_shape, tuple)
        and len(image_shape) == 3
        and all(
            isinstance(side, int) and not isinstance(side, bool) and side > 0
            for side in image_shape
        )
    ):
        raise ValueError(
            f"image_shape_ must be 3 positive integers, got {image_shape!r}."
        )


def _check_calibration(calibration, prevalence):
    if calibration is not None and not (
        isinstance(calibration, tuple)
        and len(calibration) == 2
        and all(
            isinstance(value, float) and np.isfinite(value) for value in calibration
        )
        and calibration[0] > 0
    ):
        raise ValueError(
            "calibration_ must be None or (slope, intercept), two finite numbers with "
            f"a positive slope; got {calibration!r}."
        )
    if not (isinstance(prevalence, float) and 0 < prevalence < 1):
        raise ValueError(
            f"training_prevalence_ must be a number in (0, 1), got {prevalence!r}."
        )


#: The entries of ``validation_report_``, and which of them are shares in [0, 1].
VALIDATION_REPORT_KEYS = (
    "n_images",
    "n_pneumonia",
    "n_patients",
    "threshold",
    "recall",
    "specificity",
    "roc_auc",
)
_VALIDATION_SHARES = ("threshold", "recall", "specificity", "roc_auc")


def _check_validation_report(report):
    if report is None:
        return
    if not isinstance(report, dict) or sorted(report) != sorted(VALIDATION_REPORT_KEYS):
        raise ValueError(
            f"validation_report_ must be None or a dict of {VALIDATION_REPORT_KEYS}, "
            f"got {report!r}."
        )
    for name in _VALIDATION_SHARES:
        value = report[name]
        if not (isinstance(value, float) and 0 <= value <= 1):
            raise ValueError(
                f"validation_report_[{name!r}] must be a number in [0, 1], got "
                f"{value!r}."
            )
    counts = [report["n_images"], report["n_pneumonia"]]
    if report["n_patients"] is not None:
        counts.append(report["n_patients"])
    if not all(isinstance(count, int) and count >= 0 for count in counts):
        raise ValueError(
            f"validation_report_ counts must be non-negative integers, got {report!r}."
        )


def _check_classes(classes):
    if not (isinstance(classes, np.ndarray) and classes.shape == (2,)):
        raise ValueError(f"classes_ must hold two labels, got {classes!r}.")
    if not classes[0] < classes[1]:
        raise ValueError(
            f"classes_ must be two distinct labels in sorted order, got "
            f"{classes.tolist()}: the greater one is the pneumonia class."
        )
    check_label_order(classes, "classes_")


def _check_network(model, image_shape):
    if not isinstance(model, keras.Model):
        raise ValueError(f"model_ must be a keras.Model, got {type(model).__name__}.")
    if tuple(model.input_shape[1:]) != image_shape:
        raise ValueError(
            f"model_ takes inputs of shape {tuple(model.input_shape[1:])}, but "
            f"image_shape_ is {image_shape}."
        )
    if tuple(model.output_shape) != (None, 1):
        raise ValueError(
            f"model_ must give one pneumonia probability per image, but its output "
            f"has shape {model.output_shape}."
        )
