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


def save_dicom(
    path,
    pixels,
    *,
    photometric="MONOCHROME2",
    bits_stored=12,
    preamble=True,
    transfer_syntax=None,
    **elements,
):
    """Write ``pixels`` as a DICOM file, with ``elements`` set on the dataset.

    ``pixels`` of shape (frames, rows, columns) make a multi-frame file. Defaults:
    a DX image of patient ``"PAT-1"``, explicit VR little endian.

    Returns
    -------
    pydicom.Dataset
        The dataset written.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = DigitalXRayImageStorageForPresentation
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.Modality = "DX"
    dataset.PatientID = "PAT-1"
    dataset.set_pixel_data(np.asarray(pixels), photometric, bits_stored)
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    if transfer_syntax is not None:
        dataset.compress(transfer_syntax)
    dataset.save_as(path, enforce_file_format=preamble)
    return dataset


def write_split(folder, n_per_class, seed):
    """A NORMAL and a PNEUMONIA folder of ``n_per_class`` 16x16 JPEGs each."""
    X, y = blob_images(2 * n_per_class, 16, seed=seed)
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        write_images(folder / name, X[y == label], y[y == label], suffix=".jpeg")
