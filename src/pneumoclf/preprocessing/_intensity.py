"""Intensity normalisation of loaded images, applied after the cache."""

import numpy as np


def equalize(images):
    """Histogram-equalise each image in place, with values kept in [0, 1].

    Each pixel becomes the share of its image's pixels at or below it, rescaled so
    that the darkest level is 0: the classic equalisation ``(cdf - cdf_min) /
    (1 - cdf_min)``. Any increasing change of the intensities (exposure, contrast,
    gamma) gives the same output, so images from machines that render X-rays
    differently look alike. An image of one level becomes all zeros.

    Parameters
    ----------
    images : ndarray of shape (n, h, w, 1), float32

    Returns
    -------
    ndarray
        ``images``, equalised.
    """
    for image in images:
        levels, position, counts = np.unique(
            image, return_inverse=True, return_counts=True
        )
        cdf = np.cumsum(counts) / image.size
        lowest = cdf[0]
        if len(levels) == 1:
            image[...] = 0.0
            continue
        equalised = (cdf - lowest) / (1.0 - lowest)
        image[...] = equalised[position].reshape(image.shape)
    return images
