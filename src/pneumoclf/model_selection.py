"""Patient-grouped data splits.

Several chest X-rays often belong to one child. A split by image puts the same
child on both sides and inflates every metric, so every split here keeps each
patient's images together. Tuning lives in :mod:`pneumoclf.tuning`.
"""

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import column_or_1d

from ._deprecation import moved_attribute
from ._utils import check_no_missing_labels
from .datasets import patient_id

__all__ = ["patient_groups", "patient_split"]

# Names that moved to pneumoclf.tuning; kept here, with a warning, until 0.3.
_MOVED_TO_TUNING = dict.fromkeys(
    ("default_search_space", "limit_threads", "tune"), "pneumoclf.tuning"
)


def __getattr__(name):
    return moved_attribute(__name__, name, _MOVED_TO_TUNING)


def patient_split(paths, y, *, groups=None, sizes=(0.7, 0.15, 0.15), random_state=None):
    """Split images into train, validation and test parts, by patient and stratified.

    Every patient's images land in exactly one part, each part holds close to the
    requested fraction of the images, and each part keeps the class proportions
    of ``y``. Patients are visited from the most images to the fewest (ties in a
    random order set by ``random_state``) and each goes to the part whose share of
    its classes would be least filled by taking it.

    Parameters
    ----------
    paths : array-like of str or os.PathLike, shape (n_images,)
        Image paths. Used only to derive the patients when ``groups`` is None.
    y : array-like, shape (n_images,)
        Class labels, at least two distinct values (for example 0/1 or
        ``"NORMAL"``/``"PNEUMONIA"``).
    groups : array-like, shape (n_images,), default=None
        Patient of each image. If None, ``patient_id`` of each path.
    sizes : tuple of 3 float, default=(0.7, 0.15, 0.15)
        Fractions of the images for the train, validation and test parts:
        non-negative, summing to 1. A zero fraction gives an empty part, so
        ``(0.8, 0.0, 0.2)`` is a plain train/test split.
    random_state : int, RandomState instance or None, default=None
        Orders patients with the same number of images. Pass an int for a
        repeatable split.

    Returns
    -------
    train, val, test : ndarray of int
        Sorted indices into ``paths`` of the images of each part. Together they
        hold every index exactly once.

    Raises
    ------
    ValueError
        If the inputs differ in length, ``sizes`` is not three non-negative
        fractions summing to 1, ``y`` holds a single class, or there are too few
        patients to give every part with a positive fraction at least one.

    See Also
    --------
    sklearn.model_selection.StratifiedGroupKFold : Patient-grouped, stratified
        cross-validation folds; pass ``groups`` from
        :func:`pneumoclf.datasets.patient_id`.

    Examples
    --------
    >>> from pneumoclf.datasets import load_sample
    >>> from pneumoclf.model_selection import patient_split
    >>> data = load_sample()
    >>> train, val, test = patient_split(data.paths, data.target, random_state=0)
    >>> len(train), len(val), len(test)
    (140, 30, 30)
    >>> float(data.target[test].mean())
    0.5
    """
    y = column_or_1d(y, warn=True)
    check_no_missing_labels(y, "y")
    if len(paths) != len(y):
        raise ValueError(f"paths and y differ in length: {len(paths)} and {len(y)}.")
    groups = patient_groups(paths, groups)
    sizes = _check_sizes(sizes)
    classes, y_encoded = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"y holds a single class ({classes[0]}); a stratified split needs at "
            "least two."
        )
    patients, patient_of_image = np.unique(groups, return_inverse=True)
    n_parts_needed = np.count_nonzero(sizes)
    if len(patients) < n_parts_needed:
        raise ValueError(
            f"{len(patients)} patient(s) cannot fill {n_parts_needed} parts with "
            "positive sizes; every patient goes to one part."
        )

    # counts[i, c]: images of class c of patient i.
    counts = np.zeros((len(patients), len(classes)))
    np.add.at(counts, (patient_of_image, y_encoded), 1)
    part_of_patient = _assign_patients(counts, sizes, check_random_state(random_state))
    part_of_image = part_of_patient[patient_of_image]

    parts = tuple(np.flatnonzero(part_of_image == part) for part in range(3))
    for name, size, indices in zip(("train", "val", "test"), sizes, parts, strict=True):
        if size > 0 and len(indices) == 0:
            raise ValueError(
                f"The {name} part came out empty: its fraction {size:g} of "
                f"{len(y)} images is too small for patients of this size. Raise "
                "it, set it to 0, or provide more patients."
            )
    return parts


def patient_groups(paths, groups=None):
    """The patient of each image: ``groups`` as given, else read from the paths.

    Parameters
    ----------
    paths : array-like of str or os.PathLike, shape (n_images,)
        Image paths. Used only when ``groups`` is None.
    groups : array-like, shape (n_images,), default=None
        Patient of each image. If None, :func:`~pneumoclf.datasets.patient_id` of
        each path.

    Returns
    -------
    ndarray of shape (n_images,)
        The patient of each image.

    Raises
    ------
    ValueError
        If ``groups`` and ``paths`` differ in length or ``groups`` holds missing
        values.

    Examples
    --------
    >>> from pneumoclf.model_selection import patient_groups
    >>> patient_groups(["NORMAL/IM-0001-0001.jpeg", "NORMAL/IM-0001-0002.jpeg"])
    array(['IM-0001', 'IM-0001'], dtype='<U7')
    """
    if groups is None:
        return np.array([patient_id(path) for path in paths])
    groups = column_or_1d(groups)
    if len(groups) != len(paths):
        raise ValueError(
            f"groups and paths differ in length: {len(groups)} and {len(paths)}."
        )
    check_no_missing_labels(groups, "groups", noun="patient")
    return groups


def _check_sizes(sizes):
    sizes = np.asarray(sizes, dtype=float)
    if sizes.shape != (3,):
        raise ValueError(
            f"sizes must hold three fractions (train, val, test); got {sizes.tolist()}."
        )
    if np.any(sizes < 0) or not np.isclose(sizes.sum(), 1.0):
        raise ValueError(
            "sizes must be non-negative and sum to 1; got "
            f"{sizes.tolist()} (sum {sizes.sum():g})."
        )
    return sizes


def _assign_patients(counts, sizes, rng):
    """Greedily give each patient to the part that stays least filled.

    ``counts`` holds the images per (patient, class). A part's target for a class
    is its fraction of that class's images. Each patient goes to the part whose
    filled share of its targets, after taking the patient, is smallest (weighted
    by the patient's images per class). Large patients are placed first, while
    there is still room to balance them. Filling shares rather than counts spreads
    large patients over the parts in proportion, instead of the largest part
    taking them all.
    """
    targets = sizes[:, np.newaxis] * counts.sum(axis=0)
    with np.errstate(divide="ignore"):
        image_share = np.where(targets > 0, 1.0 / targets, np.inf)
    filled = np.zeros_like(targets)
    shuffled = rng.permutation(len(counts))
    order = shuffled[np.argsort(-counts[shuffled].sum(axis=1), kind="stable")]
    part_of_patient = np.empty(len(counts), dtype=int)
    for patient in order:
        taken = counts[patient]
        present = taken > 0
        share_after = (filled[:, present] + taken[present]) * image_share[:, present]
        part = np.argmin(share_after @ taken[present])
        part_of_patient[patient] = part
        filled[part] += taken
    return part_of_patient
