"""The process-wide cache of decoded, resized images, bounded in bytes."""

import threading
from collections import OrderedDict
from numbers import Integral
from typing import NamedTuple

DEFAULT_CACHE_LIMIT = 512 * 1024**2
"""Default bound, in bytes, of the process-wide cache of decoded images (512 MiB)."""


class CacheInfo(NamedTuple):
    """Statistics of the image cache, as returned by :func:`cache_info`."""

    hits: int
    misses: int
    entries: int
    nbytes: int
    max_nbytes: int


class _ImageCache:
    """Thread-safe least-recently-used store of arrays, bounded in bytes."""

    def __init__(self, max_nbytes):
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self._max_nbytes = max_nbytes
        self._nbytes = 0
        self._hits = 0
        self._misses = 0

    def get_many(self, keys):
        """The arrays stored under ``keys``, None where absent."""
        with self._lock:
            arrays = [self._entries.get(key) for key in keys]
            for key, array in zip(keys, arrays, strict=True):
                if array is not None:
                    self._entries.move_to_end(key)
            n_found = sum(array is not None for array in arrays)
            self._hits += n_found
            self._misses += len(keys) - n_found
            return arrays

    def put_many(self, keys, arrays):
        """Store each of ``arrays`` under its key, under one hold of the lock."""
        for array in arrays:
            array.flags.writeable = False
        with self._lock:
            for key, array in zip(keys, arrays, strict=True):
                if array.nbytes > self._max_nbytes or key in self._entries:
                    continue
                self._entries[key] = array
                self._nbytes += array.nbytes
            self._evict()

    def set_limit(self, max_nbytes):
        with self._lock:
            previous = self._max_nbytes
            self._max_nbytes = max_nbytes
            self._evict()
            return previous

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._nbytes = self._hits = self._misses = 0

    def info(self):
        with self._lock:
            return CacheInfo(
                hits=self._hits,
                misses=self._misses,
                entries=len(self._entries),
                nbytes=self._nbytes,
                max_nbytes=self._max_nbytes,
            )

    def _evict(self):
        while self._nbytes > self._max_nbytes:
            _, evicted = self._entries.popitem(last=False)
            self._nbytes -= evicted.nbytes


CACHE = _ImageCache(DEFAULT_CACHE_LIMIT)


def set_cache_limit(nbytes):
    """Bound the memory used by the process-wide cache of decoded images.

    Least recently used images are dropped until the cache fits the new bound.

    Parameters
    ----------
    nbytes : int
        Largest number of bytes the cached images may take together; ``0`` turns
        caching off for every :class:`ImageLoader`. The default is
        :data:`DEFAULT_CACHE_LIMIT` (512 MiB).

    Returns
    -------
    previous : int
        The bound in force before the call, so that it can be restored.

    Examples
    --------
    >>> from pneumoclf.preprocessing import set_cache_limit
    >>> previous = set_cache_limit(64 * 1024**2)
    >>> set_cache_limit(previous)
    67108864
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, Integral) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative integer; got {nbytes!r}.")
    return CACHE.set_limit(int(nbytes))


def clear_cache():
    """Empty the process-wide cache of decoded images and reset its statistics.

    Examples
    --------
    >>> from pneumoclf.preprocessing import cache_info, clear_cache
    >>> clear_cache()
    >>> cache_info().entries
    0
    """
    CACHE.clear()


def cache_info():
    """Report how the process-wide cache of decoded images is used.

    Returns
    -------
    info : CacheInfo
        Named tuple ``(hits, misses, entries, nbytes, max_nbytes)``: lookups that found
        an image, lookups that had to decode one, images held, bytes they take, and the
        bound set by :func:`set_cache_limit`.

    Examples
    --------
    >>> from pneumoclf.preprocessing import cache_info
    >>> cache_info().max_nbytes > 0
    True
    """
    return CACHE.info()


def cache_key(status, target_hw, resize):
    # Device and inode name the file itself, whatever link or relative path leads
    # to it; size and modification time tell when it was rewritten, and the
    # status change time, which no program can set back, when a rewrite kept
    # both (cp -p, shutil.copy2, os.utime).
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
        target_hw,
        resize,
    )
