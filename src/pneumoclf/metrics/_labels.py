"""The pneumonia label among the labels given, and checks shared by the metrics."""

from numbers import Real

import numpy as np
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import (
    check_consistent_length,
    column_or_1d,
)

from .._docstring import Substitution
from .._utils import check_label_order, check_no_missing_labels

_shared_parameters = Substitution(
    pos_label="""
The pneumonia label. None means the greater of the two labels in sorted
order (1, True or ``"PNEUMONIA"``).""",
    sample_weight="Weight of each case; None weighs every case 1.",
)

# (negative, positive) pairs that identify the pneumonia label when only one is seen.
_KNOWN_LABEL_PAIRS = (("NORMAL", "PNEUMONIA"), (False, True), (0, 1))


# --------------------------------------------------------------------------- labels


def _resolve_pos_label(labels, pos_label, source="y_true"):
    """Return the pneumonia label among the sorted distinct ``labels``."""
    if len(labels) == 0:
        raise ValueError("y_true is empty: at least one sample is needed.")
    if len(labels) > 2:
        raise ValueError(
            "Only binary labels (normal vs pneumonia) are supported, got "
            f"{len(labels)} distinct labels: {labels.tolist()}."
        )
    if pos_label is not None:
        if len(labels) == 2 and pos_label not in labels:
            raise ValueError(
                f"pos_label={pos_label!r} is not one of the labels {labels.tolist()}."
            )
        return pos_label
    if len(labels) == 2:
        check_label_order(labels, source)
        return labels[1]
    (label,) = labels.tolist()
    for negative, positive in _KNOWN_LABEL_PAIRS:
        if _same_label(label, positive):
            return label
        if _same_label(label, negative):
            return positive
    raise ValueError(
        f"The data hold the single label {label!r}, which is not one of the known "
        f"labels {_KNOWN_LABEL_PAIRS}; pass pos_label to say which label is pneumonia."
    )


def _same_label(label, known):
    """Compare labels of possibly different types (str vs number) without warnings."""
    if isinstance(known, str) != isinstance(label, str):
        return False
    return bool(label == known)


def _pneumonia_masks(y_true, y_pred, pos_label):
    """Validate two label vectors and return them as boolean "is pneumonia" masks."""
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    check_consistent_length(y_true, y_pred)
    check_no_missing_labels(y_true, "y_true")
    check_no_missing_labels(y_pred, "y_pred")
    pos_label = _resolve_pos_label(
        unique_labels(y_true, y_pred), pos_label, source="y_true and y_pred"
    )
    return y_true == pos_label, y_pred == pos_label


def _pneumonia_mask_and_scores(y_true, y_score, pos_label):
    """Validate labels and probabilities; return the "is pneumonia" mask and scores."""
    y_true = column_or_1d(y_true)
    y_score = _pneumonia_scores(y_score)
    check_consistent_length(y_true, y_score)
    check_no_missing_labels(y_true, "y_true")
    pos_label = _resolve_pos_label(unique_labels(y_true), pos_label)
    n_not_finite = int(np.count_nonzero(~np.isfinite(y_score)))
    if n_not_finite:
        raise ValueError(f"y_score contains {n_not_finite} NaN or infinite values.")
    if y_score.min() < 0 or y_score.max() > 1:
        raise ValueError(
            "y_score must hold pneumonia probabilities in [0, 1], got values in "
            f"[{y_score.min():g}, {y_score.max():g}]."
        )
    return y_true == pos_label, y_score


def _pneumonia_scores(y_score):
    """``y_score`` as a 1-D float array; a 2-D ``predict_proba`` output is refused."""
    shape = np.shape(y_score)
    if len(shape) != 1 and shape[1:] != (1,):
        raise ValueError(
            "y_score should be a 1d array of pneumonia probabilities, such as "
            f"predict_proba(X)[:, 1]; got an array of shape {shape}."
        )
    return column_or_1d(y_score, dtype=np.float64)


def _is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_fraction(name, value):
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")


def _check_beta(beta):
    if not _is_number(beta) or not beta > 0 or not np.isfinite(beta):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}.")
