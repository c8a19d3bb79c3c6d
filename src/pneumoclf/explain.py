"""Heat maps: where in an X-ray the network found evidence of pneumonia.

:func:`heatmaps` computes the maps of a fitted
:class:`~pneumoclf.PneumoniaCNNClassifier`, or a pipeline ending in one, by one of
three methods; :func:`gradcam` is its Grad-CAM; :func:`overlay_heatmap` draws a
map over its image and :func:`save_overlays` writes one such picture per image
file.

* **Integrated gradients** (Sundararajan et al., 2017), the default: the gradient
  of the pneumonia logit averaged along the straight path from a black image to
  the image, times the image. Maps at pixel resolution; on synthetic lesions the
  hottest pixel fell on the lesion for 94% of positives (``benchmarks/explain.py``),
  and on real X-rays of the bundled sample the heat lies in the lung fields.
* **Grad-CAM** (Selvaraju et al., 2017): each channel of a convolutional feature
  map weighted by the mean gradient of the logit over it, summed and rectified.
  The map has the resolution of that feature map, a few cells across for the last
  convolution, so it shows roughly *where* the network looked; on this network it
  often lights the spine and mediastinum.
* **Occlusion**: the drop of the logit when a square of the image is greyed out;
  model-agnostic and slow (one forward pass per square).

A map tells what the network used, not what is clinically right: heat on a text
marker or a corner of the film reveals a shortcut, not a finding.

References
----------
Sundararajan M, Taly A, Yan Q. *Axiomatic Attribution for Deep Networks*. ICML
2017. arXiv:1703.01365.

Selvaraju RR, Cogswell M, Das A, Vedantam R, Parikh D, Batra D. *Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization*. ICCV 2017.
doi:10.1109/ICCV.2017.74.

Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. *Sanity Checks for
Saliency Maps*. NeurIPS 2018. The tests check every method against both of its
randomisation tests.
"""

import os
from numbers import Integral, Real
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._utils import atomic_open, is_pneumonia
from .classifier import PneumoniaCNNClassifier
from .preprocessing import ImageLoader, UnreadableImage, fitted_size, read_grayscale

__all__ = [
    "METHODS",
    "gradcam",
    "heatmaps",
    "labelled_overlay",
    "overlay_heatmap",
    "plot_heatmaps",
    "save_overlays",
]

# Layers that keep the spatial grid of their input unchanged at inference.
_GRID_PRESERVING_LAYERS = (
    keras.layers.InputLayer,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.BatchNormalization,
    keras.layers.Dropout,
    keras.layers.RandomRotation,
    keras.layers.RandomZoom,
    keras.layers.RandomTranslation,
    keras.layers.RandomContrast,
    keras.layers.RandomFlip,
    keras.layers.RandomBrightness,
)
_WINDOW_LAYERS = (
    keras.layers.Conv2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
)


def gradcam(estimator, X, *, layer=None, batch_size=32):
    """Grad-CAM heat maps of the evidence for pneumonia.

    For each image, the gradient of the pneumonia logit (the output before its
    sigmoid) with respect to a convolutional feature map is averaged over space
    to weight the channels; the weighted sum of the channels, rectified, is the
    map. It is then resampled to the input resolution and divided by its own
    maximum.

    Parameters
    ----------
    estimator : PneumoniaCNNClassifier or Pipeline
        A fitted classifier, or a fitted pipeline whose last step is one (for
        example ``ImageLoader`` then ``PneumoniaCNNClassifier``). Either may be
        wrapped in a ``FixedThresholdClassifier`` or
        ``TunedThresholdClassifierCV``: a threshold does not change the maps.
    X : array-like or sequence of paths
        What ``estimator`` predicts from: images of shape ``(n, h, w, c)`` or
        ``(n, h, w)`` scaled to [0, 1] for a classifier; for a pipeline, its
        input (image paths, for a pipeline that starts with ``ImageLoader``).
    layer : str or None, default=None
        Name of the convolutional layer to explain (for example ``"conv_2"``).
        None takes the last one, whose features are the most class-specific.
    batch_size : int, default=32
        Images per forward and backward pass.

    Returns
    -------
    heatmaps : ndarray of shape (n, h, w), dtype float32
        One map per image at the network's input resolution
        (``image_shape_[:2]``), with values in [0, 1]: each map is divided by
        its own maximum, so 1 marks where the evidence for pneumonia is
        strongest *in that image*, and maps of different images are not on one
        scale. A map of zeros means that no region raised the pneumonia score,
        as is common for images the network finds normal.

    Raises
    ------
    TypeError
        If ``estimator`` is not one of the accepted kinds.
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If ``layer`` is not the name of a convolutional layer of the network,
        or ``batch_size`` is not a positive integer.

    See Also
    --------
    overlay_heatmap : Draw a heat map over its image.
    save_overlays : Write the overlays of image files as PNG files.

    Notes
    -----
    The explained feature map is the *rectified* output of the convolution:
    the ReLU that follows it (after batch normalisation when there is one),
    since the convolution's own output may be negative. The score is the logit
    rather than the probability because a confident prediction saturates the
    sigmoid, whose vanishing gradient would leave the map empty or noisy; the
    two give the same map otherwise.

    Each cell of the feature map is placed at the centre of its receptive field
    in the input before bilinear interpolation, so the map lines up with the
    image even when unpadded ("valid") convolutions shrink the grid. Pixels
    nearer the border than the outermost cell centres take that cell's value.
    Behind layers of other kinds, the cells are spread evenly over the image.

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf import PneumoniaCNNClassifier
    >>> from pneumoclf.explain import gradcam
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 16, 16)).astype("float32")
    >>> y = np.array([0, 1] * 20)
    >>> X[y == 1, 4:12, 4:12] = 1.0
    >>> clf = PneumoniaCNNClassifier(epochs=3, random_state=0).fit(X, y)
    >>> heatmaps = gradcam(clf, X[:4], layer="conv_3")
    >>> heatmaps.shape, heatmaps.dtype
    ((4, 16, 16), dtype('float32'))
    >>> bool(heatmaps.min() >= 0 and heatmaps.max() <= 1)
    True
    """
    return heatmaps(estimator, X, method="gradcam", layer=layer, batch_size=batch_size)


def heatmaps(estimator, X, *, method="integrated_gradients", layer=None, batch_size=32):
    """Heat maps of the evidence for pneumonia, by one of several methods.

    Parameters
    ----------
    estimator : PneumoniaCNNClassifier or Pipeline
        As for :func:`gradcam`.
    X : array-like or sequence of paths
        As for :func:`gradcam`.
    method : {"integrated_gradients", "gradcam", "occlusion"}, \
            default="integrated_gradients"
        ``"integrated_gradients"``: the gradient of the pneumonia logit along
        the straight path from a black image, in 32 steps, times the image
        (Sundararajan et al., 2017), summed over channels, positive part: the
        method that localised best on synthetic lesions (see the module notes).
        ``"gradcam"``: :func:`gradcam`, at ``layer``. ``"occlusion"``: how much
        the logit drops when a square of the image (an eighth of its side,
        moved by half that) is replaced by the image's mean, averaged over the
        squares that cover each pixel; one forward pass per square.
    layer : str or None, default=None
        For ``"gradcam"`` only: the convolutional layer; None takes the last.
    batch_size : int, default=32
        Images per forward and backward pass.

    Returns
    -------
    heatmaps : ndarray of shape (n, h, w), dtype float32
        One map per image at the network's input resolution, in [0, 1], each
        divided by its own maximum; all zeros where nothing raised the score.

    Raises
    ------
    ValueError
        If ``method`` is unknown, ``layer`` is given with another method, or
        an argument is invalid as for :func:`gradcam`.

    See Also
    --------
    gradcam : Grad-CAM, with its notes on layers and alignment.
    save_overlays : Write the overlays of image files as PNG files.

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf import PneumoniaCNNClassifier
    >>> from pneumoclf.explain import heatmaps
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 16, 16)).astype("float32")
    >>> y = np.array([0, 1] * 20)
    >>> X[y == 1, 4:12, 4:12] = 1.0
    >>> clf = PneumoniaCNNClassifier(epochs=3, random_state=0).fit(X, y)
    >>> heatmaps(clf, X[:2], method="occlusion").shape
    (2, 16, 16)
    """
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}."
        )
    if layer is not None and method != "gradcam":
        raise ValueError(f"layer is a Grad-CAM setting; method={method!r} takes none.")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, Integral)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    classifier, images = _classifier_and_images(estimator, X)
    model = classifier.model_
    if method == "gradcam":
        maps = _gradcam_maps(model, images, layer, batch_size)
    elif method == "occlusion":
        maps = _occlusion_maps(_logit_function(model), images, batch_size)
    else:
        maps = _integrated_gradients(_logit_function(model), images, batch_size)
    return _normalised(maps)


#: The methods :func:`heatmaps` offers; the first is the default.
METHODS = ("integrated_gradients", "gradcam", "occlusion")

# Steps of the path integral of integrated gradients.
_INTEGRATION_STEPS = 32


def _gradcam_maps(model, images, layer, batch_size):
    conv = _convolution(model, layer)
    features = _rectified_output(model, conv)
    grid = _input_grid(model, features)
    explained = _features_and_logit_model(model, features)
    maps = [
        _class_activation_maps(explained, images[start : start + batch_size])
        for start in range(0, len(images), batch_size)
    ]
    return _upsampled(np.concatenate(maps), grid, images.shape[1:3])


def _logit_function(model):
    """A function from a batch of images to their pneumonia logits."""
    explained = _features_and_logit_model(model, model.layers[0])

    def logits(images):
        return tf.reshape(explained(images)[1], [-1])

    return logits


def _in_batches(function, images, batch_size):
    return np.concatenate(
        [
            np.asarray(function(images[start : start + batch_size]))
            for start in range(0, len(images), batch_size)
        ]
    )


def _occlusion_maps(logits, images, batch_size):
    """Mean drop of the logit when a square covering each pixel is greyed out."""
    n_images, height, width = images.shape[:3]
    window = max(2, round(min(height, width) / 8))
    stride = max(1, window // 2)
    fill = images.mean(axis=(1, 2, 3), keepdims=True)
    base = _in_batches(logits, images, batch_size)
    drops = np.zeros((n_images, height, width))
    counts = np.zeros((height, width))
    for top in _window_starts(height, window, stride):
        for left in _window_starts(width, window, stride):
            occluded = images.copy()
            square = (slice(None), slice(top, top + window), slice(left, left + window))
            occluded[square] = np.broadcast_to(fill, occluded[square].shape)
            drop = base - _in_batches(logits, occluded, batch_size)
            drops[square] += drop[:, np.newaxis, np.newaxis]
            counts[square[1:]] += 1
    return np.maximum(drops / counts, 0)


def _window_starts(size, window, stride):
    """Starts of windows that step by ``stride`` and reach the last pixel."""
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def _integrated_gradients(logits, images, batch_size):
    """Positive integrated gradients from a black image, summed over channels."""

    def attributions(batch):
        batch = tf.convert_to_tensor(batch)
        total = tf.zeros_like(batch)
        for step in range(_INTEGRATION_STEPS):
            scaled = batch * ((step + 0.5) / _INTEGRATION_STEPS)
            with tf.GradientTape() as tape:
                tape.watch(scaled)
                score = tf.reduce_sum(logits(scaled))
            total += tape.gradient(score, scaled)
        return tf.reduce_sum(batch * total / _INTEGRATION_STEPS, axis=-1)

    return np.maximum(_in_batches(attributions, images, batch_size), 0)


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
        ax.set_title(title, fontsize=9)
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


# --- estimators and inputs ---------------------------------------------------


def _classifier_and_images(estimator, X):
    """The fitted classifier inside ``estimator`` and ``X`` as its image batch."""
    estimator = _without_threshold_wrapper(estimator)
    if isinstance(estimator, PneumoniaCNNClassifier):
        check_is_fitted(estimator)
        return estimator, estimator.as_image_batch(X)
    if isinstance(estimator, Pipeline) and isinstance(
        estimator.steps[-1][1], PneumoniaCNNClassifier
    ):
        check_is_fitted(estimator)
        classifier = estimator.steps[-1][1]
        return classifier, classifier.as_image_batch(estimator[:-1].transform(X))
    raise TypeError(
        "Heat maps need a fitted PneumoniaCNNClassifier or a Pipeline whose last "
        f"step is one; got {type(estimator).__name__}."
    )


def _without_threshold_wrapper(estimator):
    if isinstance(estimator, (FixedThresholdClassifier, TunedThresholdClassifierCV)):
        # As when these predict: the fitted copy, else the (prefit) estimator.
        return getattr(estimator, "estimator_", estimator.estimator)
    return estimator


def _taking_paths(estimator):
    """``estimator``, or a pipeline that loads image files for a bare classifier."""
    inner = _without_threshold_wrapper(estimator)
    if not isinstance(inner, PneumoniaCNNClassifier):
        return estimator
    check_is_fitted(inner)
    height, width = inner.image_shape_[:2]
    return Pipeline([("load", ImageLoader(image_size=(height, width))), ("cnn", inner)])


def _pads_images(estimator):
    """Whether ``estimator`` is a pipeline that starts with a padding loader."""
    inner = _without_threshold_wrapper(estimator)
    if not isinstance(inner, Pipeline):
        return False
    first = inner.steps[0][1]
    return isinstance(first, ImageLoader) and first.resize == "pad"


# --- the network ---------------------------------------------------------------


def _convolution(model, name):
    """The convolutional layer called ``name``, or the last one when None."""
    convolutions = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
    ]
    if not convolutions:
        raise ValueError(f"The network {model.name!r} has no convolutional layer.")
    if name is None:
        return convolutions[-1]
    for layer in convolutions:
        if layer.name == name:
            return layer
    names = ", ".join(repr(layer.name) for layer in convolutions)
    raise ValueError(
        f"layer={name!r} is not a convolutional layer of this network; "
        f"choose one of {names}."
    )


def _rectified_output(model, conv):
    """The layer whose output is the convolution's activated feature map.

    Follows the convolution through batch normalisation and activation layers,
    which is where the network's nonlinearity lives when the convolution itself
    is linear (as in ``build_cnn``).
    """
    layers = model.layers
    current = conv
    for following in layers[layers.index(conv) + 1 :]:
        is_normalisation_or_activation = isinstance(
            following,
            (
                keras.layers.BatchNormalization,
                keras.layers.Activation,
                keras.layers.ReLU,
            ),
        )
        if not is_normalisation_or_activation or following.input is not current.output:
            break
        current = following
    return current


def _features_and_logit_model(model, features):
    """A function from images to (feature maps, pneumonia logits)."""
    head = model.layers[-1]
    if (
        head.output is model.outputs[0]
        and isinstance(head, keras.layers.Dense)
        and head.activation is keras.activations.sigmoid
    ):
        inner = keras.Model(model.input, [features.output, head.input])

        def features_and_logit(images):
            feature_maps, hidden = inner(images, training=False)
            logit = keras.ops.matmul(hidden, head.kernel)
            if head.bias is not None:
                logit = logit + head.bias
            return feature_maps, logit

        return features_and_logit

    # Any other head: explain the output itself.
    inner = keras.Model(model.input, [features.output, model.outputs[0]])
    return lambda images: inner(images, training=False)


def _class_activation_maps(features_and_logit, images):
    """Rectified Grad-CAM maps at the resolution of the feature map."""
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        feature_maps, logit = features_and_logit(images)
        # Images do not interact at inference, so the gradient of the sum gives
        # each image the gradient of its own logit.
        total = tf.reduce_sum(logit)
    gradients = tape.gradient(total, feature_maps)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(channel_weights * feature_maps, axis=-1))
    return maps.numpy()


def _input_grid(model, features):
    """Where the cells of a feature map sit in the input image.

    Returns
    -------
    list of (float, float)
        For the rows and the columns, ``(offset, stride)``: cell ``i`` is
        centred on input pixel ``offset + stride * i`` (pixel ``k`` spans
        ``[k - 0.5, k + 0.5]``). None when a layer on the way moves the grid
        in a way this function does not know.
    """
    grid = [(0.0, 1.0), (0.0, 1.0)]
    for layer in model.layers:
        if isinstance(layer, _WINDOW_LAYERS):
            grid = [
                _through_window(layer, axis, offset, stride)
                for axis, (offset, stride) in enumerate(grid)
            ]
        elif not isinstance(layer, _GRID_PRESERVING_LAYERS):
            return None
        if layer is features:
            return grid
    return None


def _through_window(layer, axis, offset, stride):
    """``(offset, stride)`` of a sliding-window layer's output along ``axis``."""
    if isinstance(layer, keras.layers.Conv2D):
        span = (layer.kernel_size[axis] - 1) * layer.dilation_rate[axis] + 1
    else:
        span = layer.pool_size[axis]
    step = layer.strides[axis]
    before = 0
    if layer.padding == "same":
        size_in = layer.input.shape[1 + axis]
        size_out = layer.output.shape[1 + axis]
        before = max((size_out - 1) * step + span - size_in, 0) // 2
    return offset + stride * ((span - 1) / 2 - before), stride * step


def _upsampled(maps, grid, size):
    """Bilinear resampling of ``(n, h', w')`` maps onto the input pixels."""
    if grid is None:
        # Unknown geometry: spread the cells evenly over the image.
        grid = [
            (0.5 * size_in / size_out - 0.5, size_in / size_out)
            for size_in, size_out in zip(size, maps.shape[1:], strict=True)
        ]
    rows, columns = (
        _interpolation_matrix(size_out, n_cells, offset, stride)
        for size_out, n_cells, (offset, stride) in zip(
            size, maps.shape[1:], grid, strict=True
        )
    )
    return np.einsum("yi,nij,xj->nyx", rows, maps, columns)


def _interpolation_matrix(n_pixels, n_cells, offset, stride):
    """Interpolation weights of the cells for each pixel, shape (pixels, cells)."""
    position = np.clip((np.arange(n_pixels) - offset) / stride, 0, n_cells - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, n_cells - 1)
    weight_above = position - below
    matrix = np.zeros((n_pixels, n_cells))
    pixels = np.arange(n_pixels)
    np.add.at(matrix, (pixels, below), 1 - weight_above)
    np.add.at(matrix, (pixels, above), weight_above)
    return matrix


def _normalised(maps):
    """Divide each map by its maximum; all-zero maps stay zero."""
    peaks = maps.max(axis=(1, 2), keepdims=True)
    scale = np.divide(1.0, peaks, out=np.zeros_like(peaks), where=peaks > 0)
    return np.clip(maps * scale, 0, 1).astype(np.float32)


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
