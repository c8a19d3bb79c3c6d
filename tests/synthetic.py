"""Small synthetic chest X-ray-like images for the tests."""

import numpy as np
from PIL import Image


def blob_images(n, size=16, *, seed=0):
    """Noise images; the second half carries a bright square (the "pneumonia").

    Returns
    -------
    X : ndarray of shape (n, size, size), float32 in [0, 1]
    y : ndarray of shape (n,), 0 then 1
    """
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 0.5, size=(n, size, size)).astype(np.float32)
    y = (np.arange(n) >= n // 2).astype(int)
    side = size // 3
    for i in np.flatnonzero(y):
        top, left = rng.integers(0, size - side, size=2)
        X[i, top : top + side, left : left + side] = 1.0
    order = rng.permutation(n)
    return X[order], y[order]


def write_images(folder, X, y, *, suffix=".png"):
    """Save images as 8-bit grayscale files named like the Kermany data set.

    Returns
    -------
    list of str
        One path per image, in the order of ``X``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (image, label) in enumerate(zip(X, y, strict=True)):
        name = f"person{i}_bacteria_{i}" if label else f"IM-{i:04d}-0001"
        path = folder / f"{name}{suffix}"
        Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(path)
        paths.append(str(path))
    return paths
