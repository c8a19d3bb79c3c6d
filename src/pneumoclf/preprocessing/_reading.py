"""Read many image files at once: cache look-ups, decoding threads, one array."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..exceptions import ImageLoadError
from ._cache import CACHE, cache_key
from ._decode import UnreadableImage, decode_image, read_start, stat_image_file
from ._intensity import equalize
from ._paths import check_paths
from ._provenance import remember_paths

# Most files a decoding thread takes at once.
_MAX_BLOCK = 64

# Bytes of output that cached images are scaled to [0, 1] in at once.
_BLOCK_NBYTES = 4 * 1024**2


def thread_count(n_jobs):
    n_cpus = os.cpu_count() or 1
    if n_jobs is None:
        return min(4, n_cpus)
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return n_jobs


def _write_rows(images, rows, pixels):
    """Write each of ``pixels`` into its row of ``images``, in [0, 1].

    8-bit pixels are scaled in blocks: a NumPy call per image would cost more than
    the scaling itself.
    """
    eight_bit = [
        (row, image)
        for row, image in zip(rows, pixels, strict=True)
        if image.dtype == np.uint8
    ]
    per_block = max(1, _BLOCK_NBYTES // images[0].nbytes)
    for start in range(0, len(eight_bit), per_block):
        block_rows, block = zip(*eight_bit[start : start + per_block], strict=True)
        first, last = block_rows[0], block_rows[-1]
        if last - first == len(block_rows) - 1:  # consecutive rows: no gather needed
            target = images[first : last + 1, :, :, 0]
            np.stack(block, out=target, casting="unsafe")
            target /= 255
        else:
            images[list(block_rows), :, :, 0] = np.stack(block) / np.float32(255)
    for row, image in zip(rows, pixels, strict=True):
        if image.dtype != np.uint8:
            images[row, :, :, 0] = image


def _look_up(paths, target_hw, resize, use_cache):
    """Stat every file and look it up in the cache.

    Returns
    -------
    jobs : list of (int, tuple or None, ndarray or None)
        Row, cache key and cached pixels of each readable file.
    failures : list of (int, str)
        Row and reason of each file that cannot be read.
    """
    failures, rows, keys = [], [], []
    for row, path in enumerate(paths):
        try:
            status = stat_image_file(os.fspath(path))
        except UnreadableImage as error:
            failures.append((row, error.reason))
            continue
        rows.append(row)
        keys.append(cache_key(status, target_hw, resize) if use_cache else None)
    cached = CACHE.get_many(keys) if use_cache else [None] * len(keys)
    return list(zip(rows, keys, cached, strict=True)), failures


def _load_block(paths, jobs, images, target_hw, resize):
    """Write the pixels of ``jobs``, cached or decoded, into ``images``.

    The files to decode are all read before any is decoded (see ``read_start``).

    Returns
    -------
    failures : list of (int, str)
        Row and reason of each file that could not be read or decoded.
    """
    failures, rows, loaded, to_decode = [], [], [], []
    for row, key, pixels in jobs:
        if pixels is not None:
            rows.append(row)
            loaded.append(pixels)
            continue
        try:
            to_decode.append((row, key, read_start(os.fspath(paths[row]))))
        except UnreadableImage as error:
            failures.append((row, error.reason))
    decoded = []
    for row, key, start in to_decode:
        try:
            pixels = decode_image(os.fspath(paths[row]), target_hw, resize, start)
        except UnreadableImage as error:
            failures.append((row, error.reason))
            continue
        rows.append(row)
        loaded.append(pixels)
        if key is not None:
            decoded.append((key, pixels))
    if decoded:
        CACHE.put_many(*zip(*decoded, strict=True))
    _write_rows(images, rows, loaded)
    return failures


def load_images(paths, target_hw, resize, n_threads, use_cache):
    images = np.empty((len(paths), *target_hw, 1), dtype=np.float32)
    jobs, failures = _look_up(paths, target_hw, resize, use_cache)

    def load(block):
        return _load_block(paths, block, images, target_hw, resize)

    # Cached images are copied here, in the calling thread: threads would cost more
    # than the copy. Only the files to decode go to the threads.
    load([job for job in jobs if job[2] is not None])
    to_decode = [job for job in jobs if job[2] is None]
    # Files to decode go to the threads in blocks: a task per file costs the pool
    # more time, under the GIL, than decoding a small JPEG does.
    size = max(1, min(_MAX_BLOCK, len(to_decode) // (4 * n_threads)))
    blocks = [to_decode[i : i + size] for i in range(0, len(to_decode), size)]
    if n_threads <= 1 or len(blocks) <= 1:
        outcomes = [load(block) for block in blocks]
    else:
        pool = ThreadPoolExecutor(max_workers=n_threads)
        try:
            outcomes = list(pool.map(load, blocks))
        finally:
            # On an interrupt, drop the files not started rather than decode them all.
            pool.shutdown(cancel_futures=True)

    failures += [failure for block in outcomes for failure in block]
    if failures:
        raise ImageLoadError(
            [(paths[row], reason) for row, reason in sorted(failures)],
            n_images=len(paths),
        )
    return images


def read_images(paths, target_hw, *, resize, normalize, n_jobs, cache):
    """What :meth:`ImageLoader.transform` returns, for settings already checked.

    For callers that must not import scikit-learn (prediction from an ONNX file).
    """
    paths = check_paths(paths)
    images = load_images(
        paths, target_hw, resize, n_threads=thread_count(n_jobs), use_cache=cache
    )
    if normalize == "equalize":
        equalize(images)
    remember_paths(images, paths)
    return images
