"""The convolutional network behind :class:`~pneumoclf.PneumoniaCNNClassifier`.

Pure Keras: nothing here knows about scikit-learn. With its defaults,
:func:`build_cnn` builds the reference network: three blocks of a 5x5
convolution with 32 filters, ReLU and 2x2 max pooling, then a dense layer of
128 ReLU units and one sigmoid output.
"""

import math

import keras

__all__ = [
    "augmentation_layers",
    "build_cnn",
    "count_weights",
    "inference_network",
    "resolve_padding",
]

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


def resolve_padding(input_shape, *, n_conv_blocks, kernel_size, padding="auto"):
    """Choose the convolution padding for an input size.

    Parameters
    ----------
    input_shape : tuple of int
        ``(height, width, channels)`` of one image.
    n_conv_blocks : int
        Number of convolution + pooling blocks.
    kernel_size : int
        Side of the square convolution kernels.
    padding : {"auto", "valid", "same"}, default="auto"
        ``"auto"`` means ``"valid"`` (as in the reference network) when the
        image is large enough for every block to keep at least one pixel, and
        ``"same"`` otherwise, so that small images and one-row tables still
        pass through the network.

    Returns
    -------
    str
        ``"valid"`` or ``"same"``.
    """
    if padding != "auto":
        return padding
    fits = all(
        _side_after_valid_blocks(side, n_conv_blocks, kernel_size) >= 1
        for side in input_shape[:2]
    )
    return "valid" if fits else "same"


def _side_after_valid_blocks(side, n_conv_blocks, kernel_size):
    for _ in range(n_conv_blocks):
        side = _side_after_block(side, kernel_size, "valid")
        if side < 1:
            return 0
    return side


def count_weights(
    input_shape=(64, 64, 1),
    *,
    n_conv_blocks=3,
    filters=32,
    kernel_size=5,
    dense_units=128,
    batch_norm=False,
    padding="auto",
    head="flatten",
):
    """Count the weights :func:`build_cnn` would create, without building anything.

    A network's size follows from its parameters, so a model file can be checked
    against the weights it holds before any memory is spent on them.

    Parameters
    ----------
    input_shape, n_conv_blocks, filters, kernel_size, dense_units, batch_norm, \
padding, head
        As for :func:`build_cnn`.

    Returns
    -------
    int
        The number of weights, trainable or not: ``build_cnn(...).count_params()``.

    Examples
    --------
    >>> from pneumoclf.architecture import count_weights
    >>> count_weights((64, 64, 1))
    117889
    """
    padding = resolve_padding(
        input_shape,
        n_conv_blocks=n_conv_blocks,
        kernel_size=kernel_size,
        padding=padding,
    )
    height, width, channels = input_shape
    n_weights = 0
    for _ in range(n_conv_blocks):
        n_weights += kernel_size * kernel_size * channels * filters
        # Batch normalisation replaces the bias by a scale, an offset and two
        # moving statistics.
        n_weights += 4 * filters if batch_norm else filters
        height, width = (
            _side_after_block(side, kernel_size, padding) for side in (height, width)
        )
        channels = filters
    n_hidden_inputs = height * width * channels if head == "flatten" else channels
    return n_weights + (n_hidden_inputs + 1) * dense_units + dense_units + 1


def _side_after_block(side, kernel_size, padding):
    if padding == "same":
        return -(-side // 2)
    return (side - kernel_size + 1) // 2


def augmentation_layers(
    *, rotation=0.0, zoom=0.0, shift=0.0, contrast=0.0, blur=0.0, seed=None
):
    """Random augmentation layers, active only while training.

    Parameters
    ----------
    rotation : float, default=0.0
        Largest rotation, as a fraction of a full turn (0.05 is 18 degrees).
    zoom : float, default=0.0
        Largest zoom in or out, as a fraction of the image side.
    shift : float, default=0.0
        Largest translation, as a fraction of the image side.
    contrast : float, default=0.0
        Largest contrast change factor, for images scaled to [0, 1].
    blur : float, default=0.0
        Largest standard deviation, in pixels, of a Gaussian blur given to about
        half of the training images (a strength drawn per batch up to it), so
        that sharpness, which differs between machines and sites, is not learnt
        as a sign of either class.
    seed : int or None, default=None
        Seed of the random draws.

    Returns
    -------
    list of keras.layers.Layer
        The layers for the strengths that are not zero, in a fixed order.
    """
    layers = []
    if rotation:
        layers.append(
            keras.layers.RandomRotation(
                rotation, fill_mode="constant", seed=_layer_seed(seed, 1)
            )
        )
    if zoom:
        layers.append(
            keras.layers.RandomZoom(
                zoom, fill_mode="constant", seed=_layer_seed(seed, 2)
            )
        )
    if shift:
        layers.append(
            keras.layers.RandomTranslation(
                shift, shift, fill_mode="constant", seed=_layer_seed(seed, 3)
            )
        )
    if contrast:
        layers.append(
            keras.layers.RandomContrast(
                contrast, value_range=(0, 1), seed=_layer_seed(seed, 4)
            )
        )
    if blur:
        layers.append(
            keras.layers.RandomGaussianBlur(
                factor=1.0,
                kernel_size=2 * math.ceil(2 * blur) + 1,
                sigma=(0.0, blur),
                value_range=(0, 1),
                seed=_layer_seed(seed, 8),
            )
        )
    return layers


def _layer_seed(seed, offset):
    """A seed of its own for each random layer, so that no two draw alike."""
    return None if seed is None else seed + offset


def _initializer(seed, offset):
    return keras.initializers.GlorotUniform(seed=_layer_seed(seed, offset))


def build_cnn(
    input_shape=(64, 64, 1),
    *,
    n_conv_blocks=3,
    filters=32,
    kernel_size=5,
    dense_units=128,
    dropout=0.0,
    batch_norm=False,
    padding="auto",
    head="flatten",
    rotation=0.0,
    zoom=0.0,
    shift=0.0,
    contrast=0.0,
    blur=0.0,
    optimizer="adam",
    learning_rate=1e-3,
    label_smoothing=0.0,
    seed=None,
):
    """Build and compile the pneumonia CNN.

    Parameters
    ----------
    input_shape : tuple of int, default=(64, 64, 1)
        ``(height, width, channels)`` of one image, pixels scaled to [0, 1].
    n_conv_blocks : int, default=3
        Number of blocks of convolution, ReLU and 2x2 max pooling.
    filters : int, default=32
        Filters of every convolution.
    kernel_size : int, default=5
        Side of the square convolution kernels.
    dense_units : int, default=128
        Units of the hidden dense layer.
    dropout : float, default=0.0
        Dropout rate between the hidden dense layer and the output.
    batch_norm : bool, default=False
        Whether each convolution is followed by batch normalisation.
    padding : {"auto", "valid", "same"}, default="auto"
        Convolution and pooling padding; see :func:`resolve_padding`.
    head : {"flatten", "global_average"}, default="flatten"
        How the last block's feature maps reach the dense layer: all of them,
        flattened (the reference network), or each map's mean
        (``GlobalAveragePooling2D``), which ignores where in the image a
        feature lies and has ``filters`` inputs instead of ``h * w * filters``.
    rotation, zoom, shift, contrast, blur : float, default=0.0
        Augmentation strengths; see :func:`augmentation_layers`.
    optimizer : {"adam", "adamw", "rmsprop", "sgd"}, default="adam"
        Optimiser name.
    learning_rate : float, default=1e-3
        Initial learning rate.
    label_smoothing : float, default=0.0
        Share by which the cross-entropy moves the targets 0 and 1 towards 0.5.
    seed : int or None, default=None
        Seed of the initial weights and of the augmentation and dropout layers:
        with a seed, the same call builds the same network, and no global random
        state is read or changed.

    Returns
    -------
    keras.Model
        A model compiled with binary cross-entropy and an ``auc`` metric,
        whose output is the probability of pneumonia, shape ``(n, 1)``.

    Examples
    --------
    >>> from pneumoclf.architecture import build_cnn
    >>> model = build_cnn((64, 64, 1))
    >>> model.output_shape
    (None, 1)
    >>> [layer.name for layer in model.layers if "conv" in layer.name]
    ['conv_1', 'conv_2', 'conv_3']
    """
    padding = resolve_padding(
        input_shape,
        n_conv_blocks=n_conv_blocks,
        kernel_size=kernel_size,
        padding=padding,
    )
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for layer in augmentation_layers(
        rotation=rotation,
        zoom=zoom,
        shift=shift,
        contrast=contrast,
        blur=blur,
        seed=seed,
    ):
        x = layer(x)
    for block in range(1, n_conv_blocks + 1):
        x = _conv_block(
            x,
            block,
            filters,
            kernel_size,
            padding,
            batch_norm,
            _initializer(seed, 10 + block),
        )
    x = HEADS[head](name=head)(x)
    x = keras.layers.Dense(
        dense_units,
        activation="relu",
        kernel_initializer=_initializer(seed, 5),
        name="dense",
    )(x)
    if dropout:
        x = keras.layers.Dropout(dropout, seed=_layer_seed(seed, 6), name="dropout")(x)
    outputs = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=_initializer(seed, 7),
        name="pneumonia",
    )(x)
    model = keras.Model(inputs, outputs, name="pneumonia_cnn")
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


#: The layers that :func:`build_cnn`'s ``head`` names.
HEADS = {
    "flatten": keras.layers.Flatten,
    "global_average": keras.layers.GlobalAveragePooling2D,
}


# Layers that act only while training: at inference they pass images through.
_TRAINING_ONLY_LAYERS = (
    keras.layers.RandomRotation,
    keras.layers.RandomZoom,
    keras.layers.RandomTranslation,
    keras.layers.RandomContrast,
    keras.layers.RandomGaussianBlur,
    keras.layers.Dropout,
)


def inference_network(model):
    """The network as it predicts: the same layers and weights, without augmentation.

    The augmentation and dropout layers pass images through unchanged at
    inference, but their random operations stay in a traced graph, where
    exporters such as ONNX's cannot follow them. The network returned shares
    every other layer, and so every weight, with ``model``.

    Parameters
    ----------
    model : keras.Model
        A network :func:`build_cnn` built (trained or not).

    Returns
    -------
    keras.Model
        Same input and output as ``model``; ``model(x, training=False)`` and it
        agree exactly.

    Examples
    --------
    >>> from pneumoclf.architecture import build_cnn, inference_network
    >>> model = build_cnn((32, 32, 1), rotation=0.1, dropout=0.3)
    >>> [layer.name for layer in inference_network(model).layers][:3]
    ['image', 'conv_1', 'relu_1']
    """
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers[1:]:
        if not isinstance(layer, _TRAINING_ONLY_LAYERS):
            x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_inference")


def _conv_block(x, block, filters, kernel_size, padding, batch_norm, initializer):
    conv = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding=padding,
        use_bias=not batch_norm,
        kernel_initializer=initializer,
        name=f"conv_{block}",
    )
    x = conv(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"batch_norm_{block}")(x)
    x = keras.layers.Activation("relu", name=f"relu_{block}")(x)
    return keras.layers.MaxPooling2D(2, padding=padding, name=f"pool_{block}")(x)
