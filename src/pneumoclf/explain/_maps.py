"""Heat maps by integrated gradients, Grad-CAM and occlusion."""

from numbers import Integral

import numpy as np
import tensorflow as tf

from ._estimators import _classifier_and_images
from ._network import (
    _class_activation_maps,
    _convolution,
    _features_and_logit_model,
    _input_grid,
    _normalised,
    _rectified_output,
    _upsampled,
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
