"""Checks of image arrays: their rank, shape against the fitted one, range."""

import hashlib
import warnings

import numpy as np
from sklearn.utils.validation import check_consistent_length, column_or_1d

from .network import check_same_architecture

# How far pixels may stray from [0, 1] (rounding after a rescaling) before the
# input is taken for unscaled images.
_UNIT_RANGE_SLACK = 1e-3


def warn_if_outside_unit_range(X):
    """Warn when images are not scaled to [0, 1], as unscaled 8-bit pixels are."""
    # The contrast augmentation clips training images to [0, 1], and a network
    # trained on [0, 1] saturates on larger values: either way the prediction is
    # not what the user meant.
    low, high = float(X.min()), float(X.max())
    if low < -_UNIT_RANGE_SLACK or high > 1 + _UNIT_RANGE_SLACK:
        warnings.warn(
            f"X holds values in [{low:g}, {high:g}], but PneumoniaCNNClassifier "
            "expects images scaled to [0, 1], as ImageLoader gives them: divide "
            "8-bit pixels by 255 and 16-bit ones by 65535.",
            UserWarning,
            stacklevel=4,
        )


def image_batch(X):
    """View a validated array as ``(n, h, w, c)`` images."""
    if X.ndim == 2:
        batch = X[:, np.newaxis, :, np.newaxis]
    elif X.ndim == 3:
        batch = X[..., np.newaxis]
    elif X.ndim == 4:
        batch = X
    else:
        raise ValueError(
            f"Expected images of shape (n, h, w, c) or (n, h, w), or a 2-D table; "
            f"got an array with {X.ndim} dimensions, shape {X.shape}."
        )
    if 0 in batch.shape[1:]:
        raise ValueError(
            "Images need at least one row, one column and one channel; got X of "
            f"shape {X.shape}."
        )
    return batch


def check_image_shape(shape, expected, name):
    """Say how images of ``shape`` differ from the ``expected`` (h, w, c)."""
    if len(shape) not in (2, 3, 4):
        return  # image_batch reports the rank
    image_shape = image_batch(np.empty((0, *shape[1:]))).shape[1:]
    if image_shape == tuple(expected):
        return
    if len(shape) == 2 and expected[0] == 1:
        raise ValueError(
            f"X has {shape[1]} features, but {name} is expecting {expected[1]} "
            "features as input."
        )
    h, w, c = expected
    if tuple(shape) in ((h, w), (h, w, c)):
        raise ValueError(
            f"X of shape {tuple(shape)} is one image, but {name} predicts a batch of "
            "images: pass X[np.newaxis] for a batch of one."
        )
    if image_shape[:2] == (h, w):
        raise ValueError(
            f"Images of {image_shape[2]} channels do not match the {c}-channel "
            f"images this {name} was fitted on."
        )
    raise ValueError(
        f"Images of shape {image_shape[0]}x{image_shape[1]}x{image_shape[2]} "
        f"(height x width x channels) do not match the {h}x{w}x{c} images this "
        f"{name} was fitted on; load them with the same image size (for example "
        f"ImageLoader(image_size=({h}, {w})))."
    )


def per_image(y, sample_weight, groups):
    """``sample_weight`` as float64, and ``groups``: one entry per image, checked."""
    if sample_weight is not None:
        sample_weight = column_or_1d(sample_weight).astype(np.float64)
        check_consistent_length(y, sample_weight)
    if groups is not None:
        groups = column_or_1d(groups)
        check_consistent_length(y, groups)
    return sample_weight, groups


def training_images(X, settings, fitted, name):
    """A validated training array as ``(n, h, w, c)`` images, checked for a warm start.

    ``fitted`` is ``(image_shape_, model_)`` of the network trained further, or None.
    """
    if fitted is not None:
        check_image_shape(X.shape, fitted[0], name)
    X = image_batch(X)
    if fitted is not None:
        check_same_architecture(settings, fitted[1], X.shape[1:])
    warn_if_outside_unit_range(X)
    return X


def image_digests(X):
    """A 64-bit digest of each image's pixels, as an array of ``uint64``.

    Compact (8 bytes an image) and not reversible: what a model keeps to tell
    which images it was trained on, without their paths or pixels.
    """
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=8).digest())
            for image in np.ascontiguousarray(X, dtype=np.float32)
        ],
        dtype=np.uint64,
    )


def training_digests(X, earlier=None):
    """The sorted, distinct digests of ``X``, with ``earlier`` fits' if any."""
    digests = np.unique(image_digests(X))
    return digests if earlier is None else np.union1d(earlier, digests)
