"""Turn image files into arrays a convolutional network can take.

:class:`ImageLoader` is a stateless scikit-learn transformer that reads a sequence of
image paths and returns a ``float32`` array of shape ``(n_images, height, width, 1)``
with values in ``[0, 1]``. Decoded images are kept in a process-wide cache, bounded in
bytes, so that cross-validation and hyper-parameter searches, which load the same files
again and again, decode each file only once; see :func:`set_cache_limit`,
:func:`clear_cache` and :func:`cache_info`.

The package holds one file per part: ``loader`` (the transformer, imported on first
use, so that prediction from an ONNX file needs no scikit-learn), ``_reading`` (many
files at once, on threads), ``_decode`` (one file), ``_jpeg`` (the fast path for plain
JPEGs), ``_cache`` and ``_paths`` (input checks).
"""

from ..exceptions import ImageLoadError
from ._cache import (
    DEFAULT_CACHE_LIMIT,
    CacheInfo,
    cache_info,
    clear_cache,
    set_cache_limit,
)

# Lent to the other rooms of pneumoclf, which must not reach into the private files.
from ._decode import UnreadableImage as UnreadableImage
from ._decode import fitted_size as fitted_size
from ._decode import read_grayscale as read_grayscale
from ._dicom import DICOM_SUFFIXES as DICOM_SUFFIXES
from ._dicom import PICTURE_SUFFIXES as PICTURE_SUFFIXES
from ._dicom import dicom_patient_id as dicom_patient_id
from ._dicom import file_has_dicom_header as file_has_dicom_header
from ._dicom import may_be_dicom as may_be_dicom
from ._dicom import read_dicom_header as read_dicom_header
from ._jpeg import stored_in_gray as stored_in_gray
from ._paths import check_paths as check_paths
from ._provenance import paths_of as paths_of
from ._reading import read_images as read_images

__all__ = [
    "DEFAULT_CACHE_LIMIT",
    "CacheInfo",
    "ImageLoadError",
    "ImageLoader",
    "cache_info",
    "clear_cache",
    "set_cache_limit",
]

# The public names defined here are documented, pickled and shown as this package's
# own; ImageLoadError belongs to pneumoclf.exceptions.
for _name in __all__:
    if getattr(globals().get(_name), "__module__", "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__
del _name


def __getattr__(name):
    if name != "ImageLoader":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .loader import ImageLoader

    ImageLoader.__module__ = __name__
    globals()[name] = ImageLoader
    return ImageLoader


def __dir__():
    return sorted(set(globals()) | set(__all__))
