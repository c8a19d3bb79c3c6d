"""Private: the padding and the number of weights of a network, without Keras.

Shared by :mod:`pneumoclf.architecture`, which builds the network, and the
classifier's training room, which checks a network against its parameters
(a model file before it is read, a warm start before it trains).
"""


def resolve_padding(input_shape, *, n_conv_blocks, kernel_size, padding="auto"):
    """Choose the convolution padding for an input size.

    ``"auto"`` means ``"valid"`` (as in the reference network) when the image is
    large enough for every block to keep at least one pixel, and ``"same"``
    otherwise, so that small images and one-row tables still pass through.

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


def count_weights(
    input_shape,
    *,
    n_conv_blocks=3,
    filters=32,
    kernel_size=5,
    dense_units=128,
    batch_norm=False,
    padding="auto",
    head="flatten",
):
    """The number of weights ``build_cnn`` would create, trainable or not.

    The keyword arguments and their defaults are ``build_cnn``'s.

    A network's size follows from its parameters, so a model file can be checked
    against the weights it holds before any memory is spent on them.
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


def _side_after_valid_blocks(side, n_conv_blocks, kernel_size):
    for _ in range(n_conv_blocks):
        side = _side_after_block(side, kernel_size, "valid")
        if side < 1:
            return 0
    return side


def _side_after_block(side, kernel_size, padding):
    if padding == "same":
        return -(-side // 2)
    return (side - kernel_size + 1) // 2
