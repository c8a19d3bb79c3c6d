"""The network seen from inside: convolutions, feature grids, class activation maps."""

import keras
import numpy as np
import tensorflow as tf

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
