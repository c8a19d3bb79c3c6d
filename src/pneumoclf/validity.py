"""The input gate: is an image a frontal chest X-ray like those the model learnt from?

A network trained on chest X-rays gives a confident label to anything, a photograph
or a CT slice included. Before a label is given, three checks say why an image is
refused:

* its DICOM attributes, where the file has them: a modality other than plain
  radiography, a body part other than the chest, a lateral view, colour pixels;
* the image itself: in colour (for files: an X-ray is gray even when saved as
  RGB), nearly uniform, mostly white or mostly black;
* the network's own view of it: the Mahalanobis distance of its penultimate
  features from those of the training images, beyond what ``keep`` of the
  validation images reach (:func:`fit_input_reference`).

Each check returns a reason per image, None where it has nothing to say;
:func:`input_check_results` joins them into :data:`PASSED` or the first reason.
Nothing here needs TensorFlow: the ONNX predictor runs the same checks.
"""

import functools
import os
from typing import NamedTuple

import numpy as np

__all__ = [
    "PASSED",
    "InputReference",
    "PopulationReference",
    "colour_reasons",
    "dicom_reasons",
    "feature_reasons",
    "fit_input_reference",
    "input_check_results",
    "statistics_reasons",
]

#: What the input check says of an image that passed.
PASSED = "ok"

# DICOM modalities of plain radiographs.
_RADIOGRAPHY = frozenset({"CR", "DX", "RG", "DR"})
# BodyPartExamined values that name the chest (DICOM PS3.16 CID 4031, and habits).
_CHEST = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "TORSO", "CHEST_LAT"})
# ViewPosition values of a lateral or oblique view, not a frontal one.
_NOT_FRONTAL = frozenset({"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "LO", "RO"})

# Measured on the 5,232 training images and 312 external ones at 64x64: contrast
# (pixel standard deviation) at least 0.073, at most 6.5% of pixels white and 34%
# black. These bounds refuse only what is far outside that.
_MIN_CONTRAST = 0.03
_MAX_WHITE_SHARE = 0.25
_MAX_BLACK_SHARE = 0.6
# Mean |R - G| + |G - B| of a picture, in [0, 2]: 0 for every one of those 5,544
# X-rays, 0.1 to 0.3 for photographs.
_MAX_COLOURFULNESS = 0.03
# Bytes of a file read to find a gray JPEG's or PNG's header.
_HEAD_BYTES = 64 * 1024
# PIL modes that hold no colour.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


class InputReference(NamedTuple):
    """Where the training images' penultimate features lie, and how far is too far.

    Attributes
    ----------
    mean : ndarray of shape (n_features,)
        Mean feature vector of the training images.
    precision : ndarray of shape (n_features, n_features)
        Inverse of their shrunk (Ledoit-Wolf) covariance.
    threshold : float
        Largest Mahalanobis distance an image may have and pass.
    """

    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def distances(self, features):
        """Mahalanobis distances of ``features`` (n, n_features) from the mean."""
        centred = np.asarray(features, dtype=np.float64) - self.mean
        squared = np.einsum("ij,jk,ik->i", centred, self.precision, centred)
        return np.sqrt(np.maximum(squared, 0.0))


class PopulationReference(NamedTuple):
    """What images of the population a model was fitted for looked like to it.

    Kept from the validation patients of a fit, or from the labelled local images
    of an adaptation (:func:`pneumoclf.site.adapt_to_site`), so that a batch of
    new images can be compared with them (:func:`pneumoclf.site.check_site`).

    Attributes
    ----------
    scores : ndarray of shape (n,)
        The network's own pneumonia probability of each image, before
        calibration.
    pneumonia : ndarray of shape (n,), bool
        Whether each image shows pneumonia.
    distances : ndarray of shape (n,) or None
        Mahalanobis distance of each image's features from the training images'
        (:meth:`InputReference.distances`); None without a feature test.
    """

    scores: np.ndarray
    pneumonia: np.ndarray
    distances: np.ndarray | None


def fit_input_reference(training_features, validation_features, keep):
    """The reference of the feature check, fitted on the training images.

    Parameters
    ----------
    training_features : ndarray of shape (n, n_features)
        Penultimate features of the training images.
    validation_features : ndarray of shape (m, n_features)
        Those of images held out of training, which set the threshold.
    keep : float in (0, 1]
        Share of ``validation_features`` that passes: the threshold is their
        ``keep`` quantile.

    Returns
    -------
    InputReference
    """
    from sklearn.covariance import LedoitWolf

    features = np.asarray(training_features, dtype=np.float64)
    covariance = LedoitWolf().fit(features).covariance_
    # A small ridge keeps the inverse finite where features never vary (dead units).
    ridge = 1e-6 * max(float(np.trace(covariance)) / len(covariance), 1e-12)
    precision = np.linalg.inv(covariance + ridge * np.eye(len(covariance)))
    reference = InputReference(
        mean=features.mean(axis=0),
        # float32, as a model file stores it, so that a loaded model refuses alike.
        precision=precision.astype(np.float32),
        threshold=0.0,
    )
    distances = reference.distances(validation_features)
    return reference._replace(threshold=_threshold(distances, keep))


def _threshold(distances, keep):
    """The ``keep`` quantile of ``distances``, and no less than a chi tail predicts.

    A few validation images place an empirical quantile near their largest
    distance, below what new images of the same kind reach. Squared Mahalanobis
    distances follow a scaled chi-square law, whose scale and degrees of freedom
    are fitted to the validation images' by their mean and variance (heavy tails
    give few degrees of freedom); its ``keep`` quantile is a steadier floor.
    """
    from scipy.stats import chi2

    empirical = float(np.quantile(distances, keep))
    squared = np.asarray(distances, dtype=np.float64) ** 2
    if len(squared) < 2:
        return empirical
    mean, variance = float(squared.mean()), float(squared.var(ddof=1))
    if mean <= 0 or variance <= 0:
        return empirical
    scale, degrees = variance / (2 * mean), 2 * mean**2 / variance
    return max(empirical, float(np.sqrt(scale * chi2.ppf(keep, degrees))))


def feature_reasons(reference, features):
    """Why each image's features are too far from the training images', or None."""
    distances = reference.distances(features)
    return [
        None
        if distance <= reference.threshold
        else (
            f"unlike the training X-rays (feature distance {distance:.1f} > "
            f"{reference.threshold:.1f})"
        )
        for distance in distances
    ]


def statistics_reasons(images):
    """Why each image is no radiograph by its pixels alone, or None.

    Parameters
    ----------
    images : ndarray of shape (n, h, w) or (n, h, w, 1)
        Images scaled to [0, 1].

    Returns
    -------
    list of str or None

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf.validity import statistics_reasons
    >>> statistics_reasons(np.stack([np.full((8, 8), 0.5), np.eye(8) * 0.8]))
    ['nearly uniform image (contrast 0.000)', 'mostly black image (88% of pixels)']
    """
    pixels = np.asarray(images).reshape(len(images), -1)
    contrast = pixels.std(axis=1)
    white = (pixels >= 0.98).mean(axis=1)
    black = (pixels <= 0.02).mean(axis=1)
    reasons = []
    for spread, white_share, black_share in zip(contrast, white, black, strict=True):
        if spread < _MIN_CONTRAST:
            reasons.append(f"nearly uniform image (contrast {spread:.3f})")
        elif white_share > _MAX_WHITE_SHARE:
            reasons.append(f"mostly white image ({white_share:.0%} of pixels)")
        elif black_share > _MAX_BLACK_SHARE:
            reasons.append(f"mostly black image ({black_share:.0%} of pixels)")
        else:
            reasons.append(None)
    return reasons


def colour_reasons(paths, *, n_threads=None, cache=True):
    """Why each picture file is no radiograph by its colours, or None.

    DICOM files, and files that cannot be opened, get None: the DICOM and loader
    checks speak for them. Files are decoded on ``n_threads`` threads (None: up
    to 4, no more than the CPUs). With ``cache``, each verdict is kept while
    its file is unchanged (up to 100,000 files), so that a second check of the
    same files reads nothing.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> from pneumoclf.validity import colour_reasons
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     red = os.path.join(folder, "red.png")
    ...     Image.new("RGB", (8, 8), (200, 30, 30)).save(red)
    ...     gray = os.path.join(folder, "gray.png")
    ...     Image.new("RGB", (8, 8), (90, 90, 90)).save(gray)
    ...     colour_reasons([red, gray])
    ['colour image (colourfulness 0.67 > 0.03)', None]
    """
    from concurrent.futures import ThreadPoolExecutor

    from .preprocessing import DICOM_SUFFIXES

    keys = [_file_key(path, DICOM_SUFFIXES) for path in paths]
    if n_threads is None:
        n_threads = min(4, os.cpu_count() or 1)
    reason = _colour_reason if cache else _colour_reason.__wrapped__
    if len(keys) < 2 or n_threads == 1:
        return [reason(key) for key in keys]
    # Decoding releases the GIL: threads share the cores, as the loader's do.
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return list(pool.map(reason, keys))


def _file_key(path, dicom_suffixes):
    """``(path, modified, size)`` of a picture file; None for DICOM or no file."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() in dicom_suffixes:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return path, status.st_mtime_ns, status.st_size


@functools.lru_cache(maxsize=100_000)
def _colour_reason(key):
    """Why the file is no radiograph by its colours; cached while it is unchanged."""
    from PIL import Image

    from .preprocessing import stored_in_gray

    if key is None:
        return None
    path = key[0]
    try:
        with open(path, "rb") as file:
            if stored_in_gray(file.read(_HEAD_BYTES)):
                return None  # read from the header, without decoding anything
        with Image.open(path) as image:
            if image.mode in _GRAY_MODES:
                return None
            image.draft("RGB", (64, 64))
            pixels = np.asarray(image.convert("RGB").resize((64, 64)), np.float32)
    except Exception:
        return None
    red, green, blue = np.moveaxis(pixels / 255, -1, 0)
    colourfulness = float(np.mean(np.abs(red - green) + np.abs(green - blue)))
    if colourfulness > _MAX_COLOURFULNESS:
        return (
            f"colour image (colourfulness {colourfulness:.2f} > {_MAX_COLOURFULNESS})"
        )
    return None


def dicom_reasons(paths):
    """Why each DICOM file is no frontal chest radiograph, by its attributes, or None.

    Files named as ordinary pictures (``.png``, ``.jpeg``, ...) are not opened;
    files that are not DICOM, or whose header cannot be read, get None: reading
    them is the loader's business.
    """
    return [_dicom_reason(path) for path in paths]


def _dicom_reason(path):
    from .preprocessing import may_be_dicom, read_dicom_header

    path = os.fspath(path)
    try:
        if not may_be_dicom(path):
            return None
        with open(path, "rb") as file:
            dataset = read_dicom_header(file, path)
    except Exception:
        return None
    checks = [
        ("Modality", lambda value: value in _RADIOGRAPHY, "not a plain radiograph"),
        ("BodyPartExamined", lambda value: value in _CHEST, "not the chest"),
        ("ViewPosition", lambda value: value not in _NOT_FRONTAL, "not a frontal view"),
        (
            "PhotometricInterpretation",
            lambda value: value.startswith("MONOCHROME"),
            "not grayscale",
        ),
    ]
    for attribute, allowed, meaning in checks:
        value = str(dataset.get(attribute, "") or "").strip().upper()
        if value and not allowed(value):
            return f"DICOM {attribute} {value!r}: {meaning}"
    return None


def input_check_results(*reasons_per_check):
    """One result per image: the first reason any check gave, or :data:`PASSED`.

    Parameters
    ----------
    *reasons_per_check : sequences of str or None
        Each check's reasons, one per image, in the same order.

    Returns
    -------
    ndarray of str

    Examples
    --------
    >>> from pneumoclf.validity import input_check_results
    >>> input_check_results([None, "mostly white image"], [None, None]).tolist()
    ['ok', 'mostly white image']
    """
    results = []
    for reasons in zip(*reasons_per_check, strict=True):
        results.append(next((reason for reason in reasons if reason), PASSED))
    return np.asarray(results, dtype=object)
