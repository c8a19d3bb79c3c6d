"""What training a fitted network further needs: labels, settings, history."""

import numpy as np
from sklearn.utils.validation import column_or_1d

from .._utils import check_label_order, check_no_missing_labels


def check_partial_fit_settings(settings):
    """Refuse the settings that need a validation part, which partial_fit lacks."""
    needing = []
    if settings.threshold == "auto":
        needing.append("threshold='auto'")
    if settings.calibration is not None:
        needing.append(f"calibration={settings.calibration!r}")
    if needing:
        raise ValueError(
            "partial_fit trains on every image it is given, with no validation "
            "part to choose a threshold or calibrate on, so it cannot honour "
            f"{' and '.join(needing)}. Set a number as threshold (tune it afterwards, "
            "for example with TunedThresholdClassifierCV) and calibration=None, or "
            "train further with fit and warm_start=True."
        )


def partial_fit_classes(y, classes, fitted_classes):
    """The two labels of a partial fit: given, fitted, or those of ``y``.

    Refuses a ``classes`` that differs from the fitted one and labels of ``y``
    outside the classes.
    """
    check_no_missing_labels(y, "y")
    if classes is not None:
        classes = np.unique(column_or_1d(classes))
        if fitted_classes is not None and not np.array_equal(classes, fitted_classes):
            raise ValueError(
                f"classes={classes.tolist()} differs from the classes of the first "
                f"partial_fit, {fitted_classes.tolist()}."
            )
    labels = classes if classes is not None else fitted_classes
    if labels is None:
        labels = np.unique(y)
        if len(labels) != 2:
            raise ValueError(
                f"The first partial_fit needs both classes: pass classes=[...] when "
                f"y holds one only (here {labels.tolist()})."
            )
    if len(labels) != 2:
        raise ValueError(
            f"classes must hold the two labels, NORMAL and PNEUMONIA; got "
            f"{labels.tolist()}."
        )
    check_label_order(labels, "classes")
    check_labels_among(y, labels)
    return labels


def check_labels_among(y, classes):
    """Refuse labels of ``y`` that are not among the network's ``classes``."""
    unknown = np.setdiff1d(np.unique(y), classes)
    if unknown.size:
        raise ValueError(
            f"y holds labels {unknown.tolist()[:10]} that are not among the classes "
            f"{classes.tolist()} of the network it would train."
        )


def joined_history(earlier, n_earlier, later, n_later):
    """Two training histories end to end; a figure one of them lacks is NaN."""
    names = list(earlier) + [name for name in later if name not in earlier]
    return {
        name: list(earlier.get(name, [float("nan")] * n_earlier))
        + list(later.get(name, [float("nan")] * n_later))
        for name in names
    }
