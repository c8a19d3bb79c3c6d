"""Check that a transformer's input is a sequence of image paths."""

import os

import numpy as np

_MAX_LISTED_INVALID_ENTRIES = 10


def _is_path(value):
    if isinstance(value, str):
        text = value
    elif isinstance(value, os.PathLike):
        text = os.fsdecode(os.fspath(value))
    else:
        return False
    return text != "" and "\0" not in text


def _describe_entry(value):
    if not isinstance(value, (str, os.PathLike)):
        return f"{value!r} ({type(value).__name__})"
    if os.fsdecode(os.fspath(value)) == "":
        return f"{value!r} (empty string)"
    return f"{value!r} (contains a null character)"


def check_paths(X):
    """Return the paths in ``X`` as a list, or raise a ValueError that says why not."""
    if isinstance(X, (str, bytes, os.PathLike)):
        raise ValueError(
            "ImageLoader expects a sequence of image paths, got a single path "
            f"{X!r}; wrap it in a list."
        )
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    elif not hasattr(X, "__len__"):
        X = list(X)
    paths = np.asarray(X, dtype=object)
    if paths.ndim == 2 and paths.shape[1] == 1:
        paths = paths[:, 0]
    if paths.ndim != 1:
        raise ValueError(
            "ImageLoader expects a 1-D sequence of image paths (or a single column "
            f"of them); got an array of shape {paths.shape}."
        )
    if paths.size == 0:
        raise ValueError("ImageLoader needs at least one image path; X is empty.")

    invalid = [
        (position, value) for position, value in enumerate(paths) if not _is_path(value)
    ]
    if invalid:
        listed = [
            f"position {position}: {_describe_entry(value)}"
            for position, value in invalid[:_MAX_LISTED_INVALID_ENTRIES]
        ]
        if len(invalid) > _MAX_LISTED_INVALID_ENTRIES:
            listed.append(f"and {len(invalid) - _MAX_LISTED_INVALID_ENTRIES} more")
        raise ValueError(
            "X must contain only image file paths (str or os.PathLike); "
            f"{len(invalid)} entries are not: " + "; ".join(listed) + "."
        )
    return paths.tolist()
