"""Which files an array of images was loaded from, while the array lives.

A classifier that gets the loader's output in a pipeline sees pixels only; the
file names tell it whether several images belong to one patient, so that it can
warn when it is given no patient groups. Nothing here outlives the array.
"""

import weakref

_PATHS_OF = {}


def remember_paths(images, paths):
    """Note that ``images`` were loaded from ``paths``, until ``images`` is freed."""
    key = id(images)
    _PATHS_OF[key] = list(paths)
    weakref.finalize(images, _PATHS_OF.pop, key, None)


def paths_of(images):
    """The paths ``images`` were loaded from, or None for any other array."""
    return _PATHS_OF.get(id(images))
