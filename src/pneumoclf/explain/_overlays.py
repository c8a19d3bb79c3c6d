"""Heat maps drawn over their images: overlays, labelled pictures, figures, files."""

import os
from numbers import Real
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

from .._utils import atomic_open, is_pneumonia
from ..preprocessing import UnreadableImage, fitted_size, read_grayscale
from ._estimators import _pads_images, _taking_paths, _without_threshold_wrapper
from ._maps import heatmaps


def overlay_heatmap(image, heatmap, *, alpha=0.4, colormap="jet"):
    """Draw a heat map over its image.

    Parameters
    ----------
    image : str, os.PathLike or array-like
        The image: a file, read upright (EXIF orientation applied) as grayscale
        at its full resolution, or an array of shape ``(h, w)``, ``(h, w, 1)``
        or ``(h, w, 3)`` with values in [0, 1].
    heatmap : array-like of shape (h', w')
        Values in [0, 1], as :func:`gradcam` returns for one image. It is
        resized (bilinear) to the size of ``image``, so it must cover the
        same field of view.
    alpha : float in [0, 1], default=0.4
        Weight of the coloured heat map; ``1 - alpha`` goes to the image.
    colormap : str or matplotlib.colors.Colormap, default="jet"
        A matplotlib colormap or its name.

    Returns
    -------
    PIL.Image.Image
        An RGB image of the size of ``image``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "pneumoclf[plot]"``).
    ValueError
        If an array has the wrong shape or values outside [0, 1], or ``alpha``
        is outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf.explain import overlay_heatmap
    >>> image = np.full((60, 80), 0.5)
    >>> heatmap = np.zeros((8, 8))
    >>> heatmap[2, 3] = 1.0
    >>> overlay = overlay_heatmap(image, heatmap)
    >>> overlay.mode, overlay.size
    ('RGB', (80, 60))
    """
    colormap = _colormap(colormap)
    _check_alpha(alpha)
    if isinstance(image, (str, os.PathLike)):
        image = _read_grayscale(image)
    base = _rgb_in_unit_range(image)
    heatmap = _heatmap_array(heatmap)
    height, width = base.shape[:2]
    resized = Image.fromarray(heatmap).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    colours = colormap(np.clip(np.asarray(resized), 0, 1))[..., :3]
    blended = (1 - alpha) * base + alpha * colours
    return Image.fromarray(np.round(blended * 255).astype(np.uint8), mode="RGB")


def save_overlays(
    estimator,
    paths,
    out_dir,
    *,
    method="integrated_gradients",
    layer=None,
    alpha=0.4,
    labelled=True,
):
    """Write a heat-map overlay of each image file as a PNG file.

    Each picture is the original file at full resolution with its heat map
    from :func:`heatmaps` drawn over it by :func:`overlay_heatmap`; with
    ``labelled``, a colour bar beside it and a title above it give the label,
    the probability of pneumonia, the threshold and the method
    (:func:`labelled_overlay`).

    Parameters
    ----------
    estimator : Pipeline or PneumoniaCNNClassifier
        A fitted pipeline that takes image paths (``ImageLoader`` then
        ``PneumoniaCNNClassifier``), or a fitted classifier, whose images are
        then loaded with ``ImageLoader(image_size=image_shape_[:2])``.
    paths : sequence of str or os.PathLike
        The image files.
    out_dir : str or os.PathLike
        Folder of the PNG files, created when missing.
    method : {"integrated_gradients", "gradcam", "occlusion"}, \
            default="integrated_gradients"
        How the maps are computed; see :func:`heatmaps`.
    layer : str or None, default=None
        With ``method="gradcam"``, the convolutional layer to explain.
    alpha : float in [0, 1], default=0.4
        Weight of the heat map in the overlay.
    labelled : bool, default=True
        Whether to add the colour bar and the title; False writes the overlay
        alone, of the size of the file.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``paths``: ``<stem>_<method>.png``
        (``chest_integrated_gradients.png``, ``chest_gradcam.png``, ...), or
        ``<stem>-2_<method>.png``, ``<stem>-3_<method>.png``, ... for later
        files whose name would repeat an earlier one.

    Notes
    -----
    Existing files of the same names are replaced. Each file is written under
    a temporary name in ``out_dir`` and then renamed, so that a reader never
    sees a partly written picture. With a pipeline whose loader pads images
    (``ImageLoader(resize="pad")``), the padding is cut off the heat map
    before it is laid over the original picture.

    Examples
    --------
    >>> save_overlays(pipeline, ["chest.jpeg"], "maps")  # doctest: +SKIP
    [PosixPath('maps/chest_integrated_gradients.png')]
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ValueError(
            f"paths must be a sequence of paths; wrap {paths!r} in a list."
        )
    paths = list(paths)
    _check_alpha(alpha)
    estimator = _taking_paths(estimator)
    maps = heatmaps(estimator, paths, method=method, layer=layer)
    titles = _overlay_titles(estimator, paths, method) if labelled else None

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    names = _overlay_names(paths, method)
    pictures = _full_size_images_and_maps(estimator, paths, maps)
    for index, (name, (image, heatmap)) in enumerate(zip(names, pictures, strict=True)):
        if labelled:
            picture = labelled_overlay(image, heatmap, titles[index], alpha=alpha)
        else:
            picture = overlay_heatmap(image, heatmap, alpha=alpha)
        written.append(_save_png_atomically(picture, out_dir / name))
    return written


def labelled_overlay(image, heatmap, title, *, alpha=0.4, colormap="jet"):
    """An overlay with a colour bar and a title, the image at its full resolution.

    Parameters
    ----------
    image, heatmap, alpha, colormap
        As for :func:`overlay_heatmap`.
    title : str
        The text above the picture, for example the label and the probability;
        one line or several.

    Returns
    -------
    PIL.Image.Image
        An RGB picture: the overlay pixel for pixel, a colour bar of the heat
        scale on its right and the title above it.

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf.explain import labelled_overlay
    >>> picture = labelled_overlay(np.full((120, 100), 0.5), np.eye(8), "PNEUMONIA")
    >>> picture.width > 100 and picture.height > 120
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    overlay = overlay_heatmap(image, heatmap, alpha=alpha, colormap=colormap)
    width, height = overlay.size
    font = max(7.0, min(14.0, width / 60))
    n_lines = title.count("\n") + 1
    title_height = round((1.6 * n_lines + 1) * font)
    bar_width = round(8 * font)
    figure_width, figure_height = width + bar_width, height + title_height
    figure = Figure(figsize=(figure_width / _DPI, figure_height / _DPI), dpi=_DPI)
    picture = figure.add_axes((0, 0, width / figure_width, height / figure_height))
    picture.imshow(overlay, interpolation="nearest")
    picture.set_axis_off()
    bar = figure.add_axes(
        (
            (width + 0.15 * bar_width) / figure_width,
            0.1 * height / figure_height,
            0.2 * bar_width / figure_width,
            0.8 * height / figure_height,
        )
    )
    colorbar = figure.colorbar(
        ScalarMappable(Normalize(0, 1), _colormap(colormap)), cax=bar
    )
    colorbar.set_label("relative evidence", fontsize=0.8 * font)
    colorbar.ax.tick_params(labelsize=0.8 * font)
    figure.text(
        0.5,
        1 - 0.5 * title_height / figure_height,
        title,
        ha="center",
        va="center",
        fontsize=font,
        parse_math=False,  # a file name is shown as written
    )
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])


def plot_heatmaps(estimator, paths, *, method="integrated_gradients", n_columns=4):
    """A grid of labelled overlays of image files: one library call for a figure.

    Parameters
    ----------
    estimator : Pipeline or PneumoniaCNNClassifier
        As for :func:`save_overlays`.
    paths : sequence of str or os.PathLike
        The image files, drawn left to right, top to bottom.
    method : str, default="integrated_gradients"
        See :func:`heatmaps`.
    n_columns : int, default=4
        Pictures per row.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per file, titled with its label and probability of
        pneumonia, and one colour bar of the heat scale.

    Examples
    --------
    >>> figure = plot_heatmaps(pipeline, paths[:8])  # doctest: +SKIP
    >>> figure.savefig("maps.png")  # doctest: +SKIP
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    paths = list(paths)
    estimator = _taking_paths(estimator)
    maps = heatmaps(estimator, paths, method=method)
    titles = _overlay_titles(estimator, paths, method, short=True)
    n_rows = -(-len(paths) // n_columns)
    figure = Figure(figsize=(2.6 * n_columns + 0.8, 2.8 * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, n_columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    pictures = _full_size_images_and_maps(estimator, paths, maps)
    for ax, (image, heatmap), title in zip(
        axes.ravel(), pictures, titles, strict=False
    ):
        ax.imshow(overlay_heatmap(image, heatmap))
        ax.set_title(title, fontsize=9, parse_math=False)
    figure.colorbar(
        ScalarMappable(Normalize(0, 1), _colormap("jet")),
        ax=axes,
        shrink=0.6,
        label="relative evidence for pneumonia",
    )
    figure.suptitle(f"Heat maps: {method.replace('_', ' ')}")
    return figure


# Resolution at which a labelled overlay draws one image pixel per screen pixel.
_DPI = 100


def _overlay_titles(estimator, paths, method, *, short=False):
    """Label, probability, threshold and method of each file, as titles."""
    pipeline = _taking_paths(_without_threshold_wrapper(estimator))
    probabilities = pipeline.predict_proba(paths)[:, 1]
    classifier = pipeline.steps[-1][1]
    threshold = _threshold_of(estimator, classifier)
    labels = classifier.classes_[is_pneumonia(probabilities, threshold).astype(int)]
    titles = []
    for probability, label in zip(probabilities, labels, strict=True):
        text = f"{label}: p = {probability:.3f}"
        if not short:
            text += f"\nthreshold {threshold:.3f}, {method.replace('_', ' ')}"
        titles.append(text)
    return titles


def _full_size_images_and_maps(estimator, paths, maps):
    """Each file at full size with its map, the loader's padding cut off."""
    pads_images = _pads_images(estimator)
    for path, heatmap in zip(paths, maps, strict=True):
        image = _read_grayscale(path)
        if pads_images:
            heatmap = _without_padding(heatmap, image.shape)
        yield image, heatmap


def _threshold_of(estimator, classifier):
    """The threshold the estimator's ``predict`` applies to the probability."""
    if isinstance(estimator, FixedThresholdClassifier):
        # "auto" is 0.5 on probabilities, as FixedThresholdClassifier applies it.
        threshold = estimator.threshold
        return 0.5 if threshold == "auto" else float(threshold)
    if isinstance(estimator, TunedThresholdClassifierCV):
        return float(estimator.best_threshold_)
    return float(classifier.threshold_)


# --- pictures --------------------------------------------------------------------


def _colormap(colormap):
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "Drawing heat maps needs matplotlib; install it with "
            'pip install "pneumoclf[plot]".'
        ) from error
    if isinstance(colormap, str):
        return matplotlib.colormaps[colormap]
    return colormap


def _read_grayscale(path):
    """A file as a ``(h, w)`` float array in [0, 1], upright, at full size."""
    try:
        gray = read_grayscale(path)
    except UnreadableImage as error:
        raise ValueError(f"{os.fsdecode(path)}: {error.reason}.") from None
    pixels = np.asarray(gray, dtype=np.float32)
    return pixels / 255 if gray.mode == "L" else pixels


def _rgb_in_unit_range(image):
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., np.newaxis], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            "image must be a path or an array of shape (h, w), (h, w, 1) or "
            f"(h, w, 3); got shape {image.shape}."
        )
    _check_unit_range(image, "image")
    return image


def _heatmap_array(heatmap):
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim == 3 and heatmap.shape[2] == 1:
        heatmap = heatmap[..., 0]
    if heatmap.ndim != 2:
        raise ValueError(
            f"heatmap must be a 2-D array (one map); got shape {heatmap.shape}."
        )
    _check_unit_range(heatmap, "heatmap")
    return heatmap


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1]; got {alpha!r}.")


def _check_unit_range(values, name):
    if values.size and not (
        np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    ):
        raise ValueError(f"{name} values must lie in [0, 1].")


def _without_padding(heatmap, original_shape):
    """Cut the zero padding of ``ImageLoader(resize="pad")`` off a heat map."""
    height, width = heatmap.shape
    fitted_w, fitted_h = fitted_size(original_shape[::-1], (height, width))
    top = (height - fitted_h) // 2
    left = (width - fitted_w) // 2
    return heatmap[top : top + fitted_h, left : left + fitted_w]


def _overlay_names(paths, method):
    """``<stem>_<method>.png`` per path, numbered where a name would repeat."""
    taken = set()
    names = []
    for path in paths:
        stem = Path(os.fsdecode(path)).stem
        name = f"{stem}_{method}.png"
        copy = 1
        # Compared without case: some file systems do not tell "A" from "a".
        while name.casefold() in taken:
            copy += 1
            name = f"{stem}-{copy}_{method}.png"
        taken.add(name.casefold())
        names.append(name)
    return names


def _save_png_atomically(picture, destination):
    with atomic_open(destination) as file:
        picture.save(file, format="PNG")
    return destination
