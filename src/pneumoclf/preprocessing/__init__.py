"""Turn image files into arrays a convolutional network can take.

:class:`ImageLoader` is a stateless scikit-learn transformer that reads a sequence of
image paths and returns a ``float32`` array of shape ``(n_images, height, width, 1)``
with values in ``[0, 1]``. Decoded images are kept in a process-wide cache, bounded in
bytes, so that cross-validation and hyper-parameter searches, which load the same files
again and again, decode each file only once; see :func:`set_cache_limit`,
:func:`clear_cache` and :func:`cache_info`.

The package holds one file per part: ``loader`` (the transformer), ``_reading`` (many
files at once, on threads), ``_decode`` (one file), ``_jpeg`` (the fast path for plain
JPEGs), ``_cache`` and ``_paths`` (input checks).
"""

from ._cache import (
    DEFAULT_CACHE_LIMIT,
    CacheInfo,
    cache_info,
    clear_cache,
    set_cache_limit,
)
from ._reading import ImageLoadError
from .loader import ImageLoader

__all__ = [
    "DEFAULT_CACHE_LIMIT",
    "CacheInfo",
    "ImageLoadError",
    "ImageLoader",
    "cache_info",
    "clear_cache",
    "set_cache_limit",
]

# The public names are documented, pickled and shown as this package's own.
for _name in __all__:
    if hasattr(globals()[_name], "__module__"):
        globals()[_name].__module__ = __name__
del _name
