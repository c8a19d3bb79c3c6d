"""Read chest X-ray folders, derive patient ids, and load the bundled sample.

The public "chest-xray-pneumonia" data (Kermany et al. 2018) comes as
``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``. :func:`load_chest_xray`
reads that layout (or a single split folder) into a scikit-learn
:class:`~sklearn.utils.Bunch` of file paths and labels, ready for
:class:`pneumoclf.ImageLoader`. :func:`patient_id` recovers the patient from a
file name, because several images often belong to one child and any honest
evaluation must split by patient.
"""

import os
import re
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from .preprocessing import (
    DICOM_SUFFIXES,
    PICTURE_SUFFIXES,
    dicom_patient_id,
    file_has_dicom_header,
    may_be_dicom,
)

__all__ = ["find_images", "load_chest_xray", "load_sample", "patient_id"]

TARGET_NAMES = ("NORMAL", "PNEUMONIA")

# Formats that PIL decodes without plugins, and DICOM (through pydicom).
_IMAGE_SUFFIXES = PICTURE_SUFFIXES | DICOM_SUFFIXES

_PATIENT_PATTERNS = (
    # person1000_bacteria_2931, person1000_virus_1681, person447_virus_921_1
    re.compile(r"^(person\d+)_"),
    # IM-0115-0001, IM-0429-0001-0002, NORMAL2-IM-1427-0001
    re.compile(r"^((?:NORMAL\d+-)?IM-\d+)-"),
)


def patient_id(path):
    """Return the patient of a chest X-ray: its DICOM ``PatientID``, or its file name.

    A DICOM file (a ``.dcm`` or ``.dicom`` suffix, or an existing file of another
    name that starts with a DICOM header) gives its ``PatientID`` element; one whose
    ``PatientID`` is empty or that cannot be read falls back to its file name, as
    below. Files with a JPEG, PNG, BMP or TIFF suffix are never opened.

    The file names of the Kermany et al. chest X-ray data carry the patient:

    * ``person1000_bacteria_2931.jpeg`` and ``person1000_virus_1681.jpeg``
      belong to patient ``person1000``;
    * ``IM-0115-0001.jpeg`` and ``IM-0115-0001-0002.jpeg`` belong to ``IM-0115``;
    * ``NORMAL2-IM-1427-0001.jpeg`` belongs to ``NORMAL2-IM-1427`` (a different
      patient from ``IM-1427``).

    Any other name is its own patient: the file name without its extension.

    Parameters
    ----------
    path : str or os.PathLike
        Path or bare file name of an image.

    Returns
    -------
    patient : str
        The patient id.

    Raises
    ------
    ImportError
        If ``path`` is a DICOM file and pydicom is not installed
        (``pip install "pneumoclf[dicom]"``).

    Examples
    --------
    >>> from pneumoclf.datasets import patient_id
    >>> patient_id("train/PNEUMONIA/person1000_virus_1681.jpeg")
    'person1000'
    >>> patient_id("NORMAL2-IM-1427-0001.jpeg")
    'NORMAL2-IM-1427'
    >>> patient_id("scan_42.png")
    'scan_42'
    """
    if may_be_dicom(path):
        patient = dicom_patient_id(path)
        if patient is not None:
            return patient
    stem = Path(path).stem
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(stem)
        if match:
            return match.group(1)
    return stem


def load_chest_xray(root, *, detect_dicom=False):
    """Load the file paths and labels of a chest X-ray folder.

    Two layouts are read:

    * the standard one, ``root/<split>/{NORMAL,PNEUMONIA}/``, where ``<split>`` is
      any sub-folder holding a class folder (``train``, ``val``, ``test``, ...);
    * a single split, ``root/{NORMAL,PNEUMONIA}/``.

    Class folder names are matched without regard to case. Only the files directly
    inside a class folder are read, and of those only images: ``.jpeg``, ``.jpg``,
    ``.png``, ``.bmp``, ``.tif``, ``.tiff`` and DICOM's ``.dcm`` and ``.dicom``, in
    any case, and with ``detect_dicom=True`` files of any other name that start
    with a DICOM header; hidden files and other files are ignored. Entries with
    such a name that are not folders, broken symbolic links among them, are
    listed too, so that :class:`~pneumoclf.ImageLoader` reports those it cannot
    read. A split may lack one of the two class folders, but a class folder that
    exists must hold at least one image. Sub-folders of ``root`` that hold no
    class folder are ignored.

    Parameters
    ----------
    root : str or os.PathLike
        The folder to read.

    detect_dicom : bool, default=False
        Also list the files whose name has none of the suffixes above but whose
        content starts with a DICOM header (the ``DICM`` marker after the 128-byte
        preamble), as archives often export DICOM files without an extension.
        Opens every such file to read its first 132 bytes.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        paths : ndarray of str, shape (n_images,)
            Image paths, each ``root`` joined with the relative path, sorted by
            split name, then label, then file name.
        target : ndarray of int, shape (n_images,)
            0 for NORMAL, 1 for PNEUMONIA.
        target_names : ndarray of str, shape (2,)
            ``["NORMAL", "PNEUMONIA"]``.
        groups : ndarray of str, shape (n_images,)
            The patient of each image, see :func:`patient_id` (for DICOM files,
            their ``PatientID``). Use them to split
            by patient, for example with
            :func:`pneumoclf.model_selection.patient_split`.
        split : ndarray of str, shape (n_images,)
            The split folder of each image as named on disk (``"train"``, ...),
            or ``""`` for every image when ``root`` is a single split.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    NotADirectoryError
        If ``root`` is not a directory.
    ValueError
        If ``root`` holds neither layout, if a folder holds two class folders
        whose names differ only by case, or if a class folder holds no image.

    See Also
    --------
    load_sample : A small sample of real images shipped with the package.

    Examples
    --------
    The bundled sample is a single split:

    >>> from pathlib import Path
    >>> import numpy as np
    >>> from pneumoclf.datasets import load_chest_xray, load_sample
    >>> sample_root = Path(load_sample().paths[0]).parents[1]
    >>> data = load_chest_xray(sample_root)
    >>> np.bincount(data.target).tolist()
    [100, 100]
    >>> data.split[:2].tolist()
    ['', '']

    The full data set, with its split folders:

    >>> data = load_chest_xray("chest_xray")  # doctest: +SKIP
    >>> train_paths = data.paths[data.split == "train"]  # doctest: +SKIP
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"Chest X-ray folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"Not a directory: {root}")

    records = sorted(
        (
            (image, label, split)
            for split, classes in _find_layout(root).items()
            for label, folder in classes.items()
            for image in _images_in(folder, detect_dicom)
        ),
        key=lambda record: (record[2], record[1], record[0].name),
    )
    from sklearn.utils import Bunch

    images, target, split = zip(*records, strict=True)
    paths = np.array([str(image) for image in images])
    groups = np.array([patient_id(path) for path in paths])
    _warn_if_one_patient(groups, root)
    return Bunch(
        paths=paths,
        target=np.array(target, dtype=int),
        target_names=np.array(TARGET_NAMES),
        groups=groups,
        split=np.array(split),
    )


def _warn_if_one_patient(groups, root):
    """Warn when every image names the same patient: the grouping collapsed."""
    patients = np.unique(groups)
    if len(groups) > 1 and len(patients) == 1:
        warnings.warn(
            f"All {len(groups)} images of {root} belong to one patient, "
            f"{patients[0]!r}: de-identified DICOM files often share one PatientID. "
            "Splits and intervals by patient cannot work so; rename the files by "
            "patient or give the true patients as groups.",
            UserWarning,
            stacklevel=3,
        )


def find_images(folder, *, detect_dicom=False):
    """Every image file below ``folder``, at any depth, sorted by path.

    Images are the files :func:`load_chest_xray` reads (``.jpeg``, ``.jpg``,
    ``.png``, ``.bmp``, ``.tif``, ``.tiff``, ``.dcm``, ``.dicom``, any case, and
    with ``detect_dicom=True`` files that start with a DICOM header); hidden files
    and folders are skipped, symbolic links to folders are not followed.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to search.
    detect_dicom : bool, default=False
        Also list files of other names that start with a DICOM header.

    Returns
    -------
    list of str
        The image paths, ``folder`` joined with each relative path.

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not a folder.

    Examples
    --------
    >>> from pathlib import Path
    >>> from pneumoclf.datasets import find_images, load_sample
    >>> sample_root = Path(load_sample().paths[0]).parents[1]
    >>> len(find_images(sample_root))
    200
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"Not a folder: {folder}")
    found = []
    for parent, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [
            os.path.join(parent, name)
            for name in files
            if not name.startswith(".")
            and _is_listed_image(Path(parent, name), detect_dicom)
        ]
    return sorted(found)


def load_sample():
    """Load a small sample of real pediatric chest X-rays shipped with the package.

    The sample holds 200 images of the ``train`` split of Kermany et al. (2018):
    100 NORMAL and 100 PNEUMONIA, each from a different patient, so that any split
    of it is a split by patient. The files are the 224x224 JPEGs of the public
    "chest-xray-pneumonia" redistribution, copied unchanged under their original
    names; they decode as RGB with equal channels. The sample is for examples,
    tests and quick experiments, far too small to judge a model.

    The images are licensed under CC BY 4.0 and must be cited as: Kermany D,
    Zhang K, Goldbaum M. *Labeled Optical Coherence Tomography (OCT) and Chest
    X-Ray Images for Classification*. Mendeley Data, v2, 2018.
    doi:10.17632/rscbjbr9sj.2. Paper: Kermany DS et al., *Identifying Medical
    Diagnoses and Treatable Diseases by Image-Based Deep Learning*, Cell
    172(5):1122-1131, 2018. The ``LICENSE.md`` file beside the images lists the
    files and how they were selected.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As returned by :func:`load_chest_xray`, with ``split`` equal to ``""``
        for every image. ``paths`` point inside the installed package.

    See Also
    --------
    load_chest_xray : Read the full data set from a folder.

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf.datasets import load_sample
    >>> data = load_sample()
    >>> data.paths.shape
    (200,)
    >>> np.bincount(data.target).tolist()
    [100, 100]
    >>> len(set(data.groups))
    200
    """
    return load_chest_xray(resources.files("pneumoclf") / "data" / "sample")


def _find_layout(root):
    """Map each split name (``""`` for a single split) to its class folders."""
    root_classes = _class_folders(root)
    split_classes = {
        child.name: _class_folders(child)
        for child in _visible_subfolders(root)
        if child.name.upper() not in TARGET_NAMES
    }
    split_classes = {split: found for split, found in split_classes.items() if found}
    if root_classes and split_classes:
        raise ValueError(
            f"{root} holds both class folders and split folders "
            f"({', '.join(sorted(split_classes))}); point to one split or move "
            "the class folders into a split folder."
        )
    if root_classes:
        return {"": root_classes}
    if not split_classes:
        raise ValueError(
            f"{root} holds neither NORMAL/ and PNEUMONIA/ folders nor split folders "
            "(such as train/, val/, test/) that hold them."
        )
    return split_classes


def _visible_subfolders(folder):
    return [
        child
        for child in folder.iterdir()
        if child.is_dir() and not child.name.startswith(".")
    ]


def _class_folders(folder):
    """Map each class label found in ``folder`` to its sub-folder."""
    classes = {}
    for child in _visible_subfolders(folder):
        name = child.name.upper()
        if name not in TARGET_NAMES:
            continue
        label = TARGET_NAMES.index(name)
        if label in classes:
            raise ValueError(
                f"{folder} holds two {name} folders: {classes[label].name}/ and "
                f"{child.name}/."
            )
        classes[label] = child
    return classes


def _images_in(folder, detect_dicom):
    # Broken links and other entries that are not folders are kept, so that the
    # loader names them rather than the data set silently shrinking.
    images = [
        child
        for child in folder.iterdir()
        if not child.name.startswith(".")
        and not child.is_dir()
        and _is_listed_image(child, detect_dicom)
    ]
    if not images:
        raise ValueError(
            f"Class folder {folder} holds no image files "
            f"({', '.join(sorted(_IMAGE_SUFFIXES))}"
            f"{', or DICOM files of any name' if detect_dicom else ''})."
        )
    return images


def _is_listed_image(path, detect_dicom):
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return True
    return detect_dicom and file_has_dicom_header(path)
