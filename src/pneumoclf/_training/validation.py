"""The validation part of a fit, and what is chosen on it.

The part is held out of the training images, stratified by class (and by patient
when the fit has groups). It monitors training, calibrates the probabilities and
chooses the automatic threshold; its figures become ``validation_report_``.
"""

import functools
import os

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from .._calibration import calibrated, fit_calibration, with_prevalence
from .._utils import is_pneumonia
from ..datasets import patient_id
from ..metrics import choose_threshold
from ..model_selection import patient_split
from .inference import network_scores

#: Smallest validation part, in images of each class, worth monitoring.
MIN_VALIDATION_PER_CLASS = 2

#: Where an automatic threshold of 1 (pneumonia only where the network is exactly
#: certain, which no threshold may be) is capped: the largest float32 below 1,
#: which calls pneumonia wherever 1 would.
HIGHEST_THRESHOLD = float(np.nextafter(np.float32(1), np.float32(0)))

# Share of a fit's images that must be further images of a patient already
# counted before a fit without groups warns that its validation part leaks.
_SHARED_PATIENTS_SHARE = 0.05


def validation_split(settings, y, groups, seed, messages):
    """Indices of the training and validation parts, stratified by class.

    The validation part is None, and every image trains, with a message, when
    there are too few images or patients to hold one out with every class in it.
    """
    everything = np.arange(len(y))
    fraction = settings.validation_fraction
    n_validation = round(fraction * len(y))
    _, counts = np.unique(y, return_counts=True)
    if (
        len(counts) < 2
        or n_validation < 2 * len(counts)
        or counts.min() < 2 * MIN_VALIDATION_PER_CLASS
    ):
        return _without_validation(
            settings, f"{len(y)} training images are", messages, everything
        )
    if groups is None:
        return train_test_split(
            everything,
            test_size=n_validation,
            stratify=y.reshape(-1),
            random_state=seed,
        )
    try:
        train, validation, _ = patient_split(
            everything,
            y.reshape(-1),
            groups=groups,
            sizes=(1 - fraction, fraction, 0.0),
            random_state=seed,
        )
    except ValueError:
        n_patients = len(np.unique(groups))
        return _without_validation(
            settings, f"{n_patients} patients are", messages, everything
        )
    return train, validation


def _without_validation(settings, too_few, messages, everything):
    messages.append(
        f"{too_few} too few to hold out a validation part of "
        f"{settings.validation_fraction:.0%} with every class in it; "
        "training on all of them without early stopping or threshold choice."
    )
    return everything, None


def calibrate_and_choose_threshold(
    settings, model, X, y, validation, sample_weight, groups, messages
):
    """Fit the calibration and the automatic threshold on the validation part.

    The threshold weighs each validation image by its ``sample_weight``.

    Returns
    -------
    calibration, threshold, prevalence, validation_report
    """
    prevalence = float(np.mean(y))
    if validation is None:
        threshold = None
        if settings.calibration is not None:
            messages.append(
                "No validation part to calibrate on; the probabilities are the "
                "network's own."
            )
        if settings.threshold == "auto":
            messages.append("No validation part to choose the threshold on; using 0.5.")
            threshold = 0.5
        return None, threshold, prevalence, None
    y_validation = y[validation].reshape(-1)
    scores = network_scores(model, X[validation], settings.batch_size)
    if settings.calibration is None and settings.threshold != "auto":
        report = _validation_report(
            y_validation, scores, settings.threshold, groups, validation
        )
        return None, None, prevalence, report
    prevalence = float(np.mean(y_validation))
    calibration = None
    if settings.calibration is not None:
        calibration = fit_calibration(scores, y_validation, settings.calibration)
    threshold = None
    if settings.threshold == "auto":
        chosen = choose_threshold(
            y_validation,
            calibrated(scores, calibration),
            min_recall=settings.target_recall,
            sample_weight=(
                None if sample_weight is None else sample_weight[validation]
            ),
        )
        threshold = min(float(chosen), HIGHEST_THRESHOLD)
    # As predict sees them: at the deployment prevalence, when one is set.
    deployed = functools.partial(
        with_prevalence, trained=prevalence, deployed=settings.prevalence
    )
    report = _validation_report(
        y_validation,
        deployed(calibrated(scores, calibration)),
        settings.threshold if threshold is None else deployed(threshold),
        groups,
        validation,
    )
    return calibration, threshold, prevalence, report


def _validation_report(y_validation, probabilities, threshold, groups, validation):
    """What the validation part shows at ``threshold``: its size and the figures."""
    pneumonia = y_validation == 1
    called = is_pneumonia(probabilities, threshold)
    return {
        "n_images": len(y_validation),
        "n_pneumonia": int(pneumonia.sum()),
        "n_patients": None if groups is None else len(np.unique(groups[validation])),
        "threshold": float(threshold),
        "recall": float(called[pneumonia].mean()),
        "specificity": float(1 - called[~pneumonia].mean()),
        "roc_auc": float(roc_auc_score(y_validation, probabilities)),
    }


# Patients (folder and patient of each file) already named in a shared-patients
# warning: a search fits on parts of one data set many times, and says so once.
# By patient, not by file: two folds split by image hold other files of the same
# patients.
_WARNED_PATIENTS = set()


def shared_patients_message(paths):
    """Say so when many of ``paths`` belong to patients with several images.

    ``paths`` are the files a fit's images came from (None when unknown); the
    fit holds out its validation part by image, as it got no patient groups.
    None when some of these patients were already the subject of this message.
    """
    if paths is None:
        return None
    patients = {(os.path.dirname(path), patient_id(path)) for path in paths}
    n_images, n_patients = len(paths), len(patients)
    if n_images - n_patients < _SHARED_PATIENTS_SHARE * n_images:
        return None
    if not patients.isdisjoint(_WARNED_PATIENTS):
        return None
    _WARNED_PATIENTS.update(patients)
    return (
        f"The {n_images} images of this fit belong to {n_patients} patients (by "
        "their file names), but fit got no groups: the validation part, which "
        "stops training and chooses the threshold, is held out by image, so "
        "images of one child fall on both sides and it flatters the network. "
        "Pass the patients: pipe.fit(paths, y, cnn__groups=groups), or in a "
        "search cnn.set_fit_request(groups=True) with metadata routing. (Said "
        "once for these patients, not at every fit of a search.)"
    )
