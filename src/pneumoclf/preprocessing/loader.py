"""The scikit-learn transformer that turns image paths into arrays."""

from numbers import Integral
from typing import ClassVar

from sklearn.base import BaseEstimator, TransformerMixin

from .._compat import (
    Interval,
    InvalidParameterError,
    StrOptions,
    fit_context,
    validate_parameters,
)
from ._paths import check_paths
from ._reading import read_images

__all__ = ["ImageLoader"]


class ImageLoader(TransformerMixin, BaseEstimator):
    """Load image files as grayscale arrays of one size, ready for a CNN.

    A stateless transformer: ``fit`` learns nothing, and ``transform`` reads the files
    named in ``X`` and returns them as one ``float32`` array of shape
    ``(n_images, height, width, 1)`` with values in ``[0, 1]``. Put it first in a
    :class:`~sklearn.pipeline.Pipeline` so that searches can tune
    ``load__image_size`` like any other parameter.

    Every image is read upright (its EXIF orientation applied) and turned into one
    grayscale channel:

    * 8-bit images (grayscale, bilevel, RGB, CMYK, YCbCr, palette) become their
      luminance ``0.299 R + 0.587 G + 0.114 B``, divided by 255.
    * Images with transparency (RGBA, LA, palette or colour with a transparent
      colour) are composited on black: a pixel counts ``alpha / 255`` of its
      luminance, so fully transparent areas read as 0, like the padding.
    * 16-bit grayscale images (modes ``"I;16"``, ``"I;16B"``, ...) are divided by
      65535, so that their full depth is kept.
    * 32-bit integer images (mode ``"I"``) are divided by 65535 when all their
      values lie in ``[0, 65535]`` (16-bit data, as some readers give it); otherwise
      they are rescaled linearly from their own minimum and maximum to ``[0, 1]``.
    * Floating-point images (mode ``"F"``) are kept as they are when all their values
      lie in ``[0, 1]``; otherwise they are rescaled from their own minimum and
      maximum. NaN or infinite values make the file unreadable.
    * Multi-frame files (animated GIF, TIFF stacks) give their first frame.
    * DICOM files (a ``.dcm`` or ``.dicom`` suffix, or any file that starts with a
      DICOM header) are shown as a DICOM viewer shows them: the Modality LUT
      (rescale slope and intercept), then the VOI LUT or the first window
      centre and width, mapped onto ``[0, 1]``, and MONOCHROME1 inverted so that
      bone is bright; without a window, the stored bit depth spans ``[0, 1]``.
      Only X-ray modalities (CR, DX, ...) and grayscale images are read, and a
      multi-frame file gives its first frame. Needs the ``dicom`` extra
      (``pip install "pneumoclf[dicom]"``); compressed files also need the
      pixel data handler pydicom names in the error. See :ref:`dicom`.

    JPEG files are decoded straight to grayscale at a reduced scale when the target
    is much smaller than the file. Files are decoded in parallel threads, and
    decoded images are cached for the whole process, keyed by the file's device and
    inode (so any link or relative path to it hits), size and modification time, the
    target size and ``resize``: a file that changes is read again. Each process
    has its own cache, so searches run with ``n_jobs > 1`` fill one per worker. See
    :func:`set_cache_limit`, :func:`clear_cache` and :func:`cache_info`.

    Parameters
    ----------
    image_size : int or tuple of (int, int), default=64
        Size of the output images: an int for square images, or ``(height, width)``.

    resize : {"stretch", "pad"}, default="stretch"
        How images are brought to ``image_size``. ``"stretch"`` resizes each image to
        the target whatever its aspect ratio. ``"pad"`` keeps the aspect ratio: the
        image is scaled to fit inside the target and centred, and the borders are
        filled with zeros (black).

    n_jobs : int, default=None
        Number of threads that decode files at once. ``None`` means
        ``min(4, os.cpu_count())``; ``-1`` means all processors, ``-2`` all but one,
        and so on.

    cache : bool, default=True
        Whether decoded, resized images are kept in the process-wide cache and
        taken from it. With ``False`` every call decodes every file.

    normalize : {"equalize"} or None, default=None
        Intensity normalisation of each image after resizing. ``"equalize"``
        replaces each pixel by the share of the image's pixels at or below it
        (histogram equalisation), so that exposure, contrast and gamma, which
        differ between X-ray machines and their settings, no longer tell images
        apart. None keeps the pixels as read.

    See Also
    --------
    set_cache_limit : Bound the memory of the process-wide image cache.
    clear_cache : Empty the process-wide image cache.
    cache_info : Hits, misses and size of the process-wide image cache.

    Notes
    -----
    Unreadable files never yield arrays: ``transform`` checks every file and
    raises one :class:`~pneumoclf.exceptions.ImageLoadError` that lists each file
    that is missing, a directory, empty, not an image, truncated or corrupt,
    unreadable for lack of permission, or
    larger than ``PIL.Image.MAX_IMAGE_PIXELS`` (a possible decompression bomb; PIL
    also emits its own ``DecompressionBombWarning`` for such a file).
    Truncated files are detected unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` has
    been set to True elsewhere in the program. Symbolic links are followed; a broken
    link or a loop of links is reported as such.

    **Memory.** Loading ``n`` images of ``h x w`` pixels needs:

    * the output array, ``n * h * w * 4`` bytes (``float32``), allocated once and
      filled in place;
    * with ``cache=True``, the cached images: ``n * h * w`` bytes for 8-bit sources
      and ``4 * n * h * w`` bytes for 16-bit, 32-bit and floating-point ones (kept as
      ``float32``), up to the bound of :func:`set_cache_limit`; the cache outlives
      the call;
    * one decoded file per thread (``n_jobs``) at a time, at its full resolution
      (JPEGs at a reduced one), freed as soon as it is resized;
    * about 2 KiB of bookkeeping per path while the call runs.

    For example, 5,000 images at 224 x 224 take 1 GB of output and, from 8-bit
    files, 251 MB of cache.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from pneumoclf.preprocessing import ImageLoader
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = [Path(folder) / f"xray_{shade}.png" for shade in (0, 51, 255)]
    ...     for path, shade in zip(paths, (0, 51, 255)):
    ...         Image.new("L", (40, 30), color=shade).save(path)
    ...     X = ImageLoader(image_size=16).fit_transform(paths)
    ...     X_pad = ImageLoader(image_size=16, resize="pad").transform(paths)
    >>> X.shape, X.dtype
    ((3, 16, 16, 1), dtype('float32'))
    >>> X[:, 8, 8, 0]
    array([0. , 0.2, 1. ], dtype=float32)

    With ``resize="pad"`` the 40 x 30 image becomes 16 x 12, centred between two
    rows of zeros above and below:

    >>> X_pad[2, :, 8, 0]
    array([0., 0., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0.],
          dtype=float32)
    """

    _parameter_constraints: ClassVar[dict] = {
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple],
        "resize": [StrOptions({"stretch", "pad"})],
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
        "cache": ["boolean"],
        "normalize": [StrOptions({"equalize"}), None],
    }

    def __init__(
        self,
        *,
        image_size=64,
        resize="stretch",
        n_jobs=None,
        cache=True,
        normalize=None,
    ):
        self.image_size = image_size
        self.resize = resize
        self.n_jobs = n_jobs
        self.cache = cache
        self.normalize = normalize

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the form of ``X``; nothing is learned.

        Parameters
        ----------
        X : sequence of str or os.PathLike of shape (n_images,)
            Paths of image files. A one-column array or DataFrame is accepted too.
            The files are not opened.

        y : None
            Ignored; present for compatibility with pipelines.

        Returns
        -------
        self : ImageLoader
            The loader itself.
        """
        self._target_size()
        check_paths(X)
        return self

    def transform(self, X):
        """Read the image files named in ``X``.

        Parameters
        ----------
        X : sequence of str or os.PathLike of shape (n_images,)
            Paths of image files. A one-column array or DataFrame is accepted too.

        Returns
        -------
        images : ndarray of shape (n_images, height, width, 1), dtype float32
            The images in the order of ``X``, with values in ``[0, 1]``.

        Raises
        ------
        ImageLoadError
            If any file cannot be read; the error lists every such file and why.
        ValueError
            If ``X`` is empty or holds entries that are not paths.
        """
        validate_parameters(self)
        return read_images(
            X,
            self._target_size(),
            resize=self.resize,
            normalize=self.normalize,
            n_jobs=self.n_jobs,
            cache=self.cache,
        )

    @property
    def image_shape(self):
        """Shape ``(height, width, 1)`` of each image :meth:`transform` returns."""
        return (*self._target_size(), 1)

    def _target_size(self):
        """Return ``image_size`` as ``(height, width)``, checking every side."""
        sides = self.image_size
        if not isinstance(sides, tuple):
            sides = (sides, sides)
        # bool is an Integral that the parameter constraints let through.
        if len(sides) == 2 and all(
            isinstance(side, Integral) and not isinstance(side, bool) and side >= 1
            for side in sides
        ):
            height, width = sides
            return (int(height), int(width))
        raise InvalidParameterError(
            "The 'image_size' parameter of ImageLoader must be an int >= 1 or a "
            f"tuple of two ints >= 1 (height, width). Got {self.image_size!r} instead."
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags
