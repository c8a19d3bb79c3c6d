"""The network a classifier's settings describe: built, counted, compared."""

from .._network_size import count_weights, resolve_padding
from ..architecture import build_cnn


def build_network(settings, image_shape, seed=None):
    """The untrained, compiled network that ``settings`` describe."""
    check_padding_fits(settings, image_shape)
    return build_cnn(image_shape, **settings.network, seed=seed)


def count_network_weights(settings, image_shape):
    """How many weights :func:`build_network` would create, without building it."""
    check_padding_fits(settings, image_shape)
    return count_weights(image_shape, **settings.shape)


def check_padding_fits(settings, image_shape):
    """Refuse ``padding="valid"`` when the blocks would leave no pixel."""
    if settings.padding != "valid":
        return
    # "auto" picks "valid" exactly when every block keeps at least one pixel.
    fitting = resolve_padding(
        image_shape,
        n_conv_blocks=settings.n_conv_blocks,
        kernel_size=settings.kernel_size,
    )
    if fitting != "valid":
        height, width, _ = image_shape
        raise ValueError(
            f"padding='valid' leaves no pixel of {height}x{width} images after "
            f"{settings.n_conv_blocks} blocks of {settings.kernel_size}x"
            f"{settings.kernel_size} convolutions and 2x2 pooling; use "
            "padding='auto' or 'same', fewer n_conv_blocks, a smaller "
            "kernel_size or larger images."
        )


def check_same_architecture(settings, model, image_shape):
    """Refuse to train further a network that the settings no longer describe."""
    expected = count_network_weights(settings, image_shape)
    if expected != model.count_params():
        raise ValueError(
            "warm_start trains the fitted network further, but its architecture "
            "parameters (n_conv_blocks, filters, kernel_size, dense_units, "
            f"batch_norm, padding, head) now describe a network of {expected} weights, "
            f"not its {model.count_params()}. Restore them, or fit with "
            "warm_start=False."
        )
