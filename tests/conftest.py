"""Shared fixtures: small synthetic chest X-ray-like images made on the fly."""

import numpy as np
import pytest
from synthetic import blob_images, write_images


@pytest.fixture(scope="session")
def image_files(tmp_path_factory):
    """48 image files (24 per class), 16x16, and their 0/1 labels."""
    X, y = blob_images(48, 16, seed=1)
    paths = write_images(tmp_path_factory.mktemp("xrays"), X, y)
    return np.array(paths), y
