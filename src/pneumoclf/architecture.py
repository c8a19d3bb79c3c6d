"""The convolutional network behind :class:`~pneumoclf.PneumoniaCNNClassifier`.

Pure Keras: nothing here knows about scikit-learn. With its defaults,
:func:`build_cnn` builds the reference network: three blocks of a 5x5
convolution with 32 filters, ReLU and 2x2 max pooling, then a dense layer of
128 ReLU units and one sigmoid output.
"""

import math

import keras

from . import _network_size
from ._deprecation import made_private
from ._docstring import NETWORK_PARAMETER_DOCS, Substitution

__all__ = ["augmentation_layers", "build_cnn", "inference_network"]

#: :func:`build_cnn`'s parameters that decide the shapes of the network's weights.
SHAPE_PARAMETERS = (
    "n_conv_blocks",
    "filters",
    "kernel_size",
    "dense_units",
    "batch_norm",
    "padding",
    "head",
)

#: Every parameter of :func:`build_cnn` but the input shape and the seed.
NETWORK_PARAMETERS = (
    *SHAPE_PARAMETERS,
    "dropout",
    "rotation",
    "zoom",
    "shift",
    "contrast",
    "blur",
    "optimizer",
    "learning_rate",
    "label_smoothing",
)

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


@Substitution(**NETWORK_PARAMETER_DOCS)
def augmentation_layers(
    *, rotation=0.0, zoom=0.0, shift=0.0, contrast=0.0, blur=0.0, seed=None
):
    """Random augmentation layers, active only while training.

    Parameters
    ----------
    rotation : float, default=0.0
        %(rotation)s
    zoom : float, default=0.0
        %(zoom)s
    shift : float, default=0.0
        %(shift)s
    contrast : float, default=0.0
        %(contrast)s
    blur : float, default=0.0
        %(blur)s
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


@Substitution(**NETWORK_PARAMETER_DOCS)
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
        %(n_conv_blocks)s
    filters : int, default=32
        %(filters)s
    kernel_size : int, default=5
        %(kernel_size)s
    dense_units : int, default=128
        %(dense_units)s
    dropout : float, default=0.0
        %(dropout)s
    batch_norm : bool, default=False
        %(batch_norm)s
    padding : {"auto", "valid", "same"}, default="auto"
        %(padding)s
    head : {"flatten", "global_average"}, default="flatten"
        %(head)s
    rotation : float, default=0.0
        %(rotation)s
    zoom : float, default=0.0
        %(zoom)s
    shift : float, default=0.0
        %(shift)s
    contrast : float, default=0.0
        %(contrast)s
    blur : float, default=0.0
        %(blur)s
    optimizer : {"adam", "adamw", "rmsprop", "sgd"}, default="adam"
        %(optimizer)s
    learning_rate : float, default=1e-3
        %(learning_rate)s
    label_smoothing : float, default=0.0
        %(label_smoothing)s
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
    padding = _network_size.resolve_padding(
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


def inference_network(model, *, with_features=False):
    """The network as it predicts: the same layers and weights, without augmentation.

    The augmentation and dropout layers pass images through unchanged at
    inference, but their random operations stay in a traced graph, where
    exporters such as ONNX's cannot follow them. The network returned shares
    every other layer, and so every weight, with ``model``.

    Parameters
    ----------
    model : keras.Model
        A network :func:`build_cnn` built (trained or not).
    with_features : bool, default=False
        Also give, as a second output, the hidden dense layer's activations: the
        features the input check measures (:mod:`pneumoclf.validity`).

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
        if layer.name == "dense":
            features = x
    outputs = [x, features] if with_features else x
    return keras.Model(inputs, outputs, name=f"{model.name}_inference")


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


def __getattr__(name):
    helpers = {
        "count_weights": _network_size.count_weights,
        "resolve_padding": _network_size.resolve_padding,
    }
    return made_private(__name__, name, helpers)
