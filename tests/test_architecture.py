import inspect
import itertools

import pytest

from pneumoclf import architecture
from pneumoclf._network_size import count_weights, resolve_padding
from pneumoclf.architecture import NETWORK_PARAMETERS, SHAPE_PARAMETERS, build_cnn

SHAPES = [(64, 64, 1), (17, 23, 1), (5, 5, 3)]
SETTINGS = [
    dict(n_conv_blocks=blocks, kernel_size=kernel, batch_norm=norm, padding=padding)
    for blocks, kernel, norm, padding in itertools.product(
        [1, 3], [3, 5], [False, True], ["auto", "same"]
    )
] + [
    dict(n_conv_blocks=blocks, batch_norm=norm, head="global_average")
    for blocks, norm in itertools.product([1, 3], [False, True])
]


@pytest.mark.parametrize("shape", SHAPES)
def test_count_weights_matches_the_built_network(shape):
    for settings in SETTINGS:
        network = build_cnn(shape, filters=4, dense_units=6, **settings)

        assert count_weights(shape, filters=4, dense_units=6, **settings) == (
            network.count_params()
        ), settings


def test_a_global_average_head_feeds_one_mean_per_filter_to_the_dense_layer():
    import numpy as np

    network = build_cnn((32, 32, 1), filters=4, dense_units=6, head="global_average")
    head = network.get_layer("global_average")
    assert network.get_layer("dense").kernel.shape == (4, 6)
    maps = np.random.default_rng(0).random((2, 3, 3, 4)).astype("float32")
    np.testing.assert_allclose(head(maps), maps.mean(axis=(1, 2)), rtol=1e-6)
    flattened = build_cnn((32, 32, 1), filters=4, dense_units=6)
    assert flattened.get_layer("dense").kernel.shape[0] > 4  # every position


def test_count_weights_of_an_enormous_network_costs_nothing():
    assert count_weights((64, 64, 1), dense_units=2**20) > 2**29


def test_count_weights_is_unchanged_by_augmentation():
    plain = count_weights((32, 32, 1), filters=4, dense_units=6)
    augmented = build_cnn(
        (32, 32, 1), filters=4, dense_units=6, rotation=0.1, zoom=0.2, shift=0.1,
        contrast=0.3, blur=1.0,
    )  # fmt: skip

    assert augmented.count_params() == plain


def test_the_inference_network_predicts_as_the_network_without_its_random_layers():
    import keras
    import numpy as np

    from pneumoclf.architecture import inference_network

    network = build_cnn(
        (24, 24, 1), filters=4, dense_units=6, batch_norm=True, dropout=0.5,
        rotation=0.2, zoom=0.2, shift=0.2, contrast=0.5, blur=1.0, seed=0,
    )  # fmt: skip
    inference = inference_network(network)
    images = np.random.default_rng(0).random((4, 24, 24, 1)).astype("float32")

    np.testing.assert_array_equal(
        inference(images).numpy(), network(images, training=False).numpy()
    )
    kinds = {type(layer) for layer in inference.layers}
    assert keras.layers.Dropout not in kinds and keras.layers.RandomZoom not in kinds
    assert keras.layers.RandomGaussianBlur not in kinds
    # The layers, and so the weights, are shared, not copied.
    assert network.get_layer("conv_1") is inference.get_layer("conv_1")


def test_the_blur_augmentation_only_softens_training_images():
    import numpy as np

    from pneumoclf.architecture import augmentation_layers

    (blur,) = augmentation_layers(blur=1.0, seed=0)
    checkerboard = np.indices((16, 16)).sum(axis=0) % 2
    images = np.repeat(checkerboard[None, ..., None], 64, axis=0).astype("float32")

    def edge_energy(batch):
        return np.abs(np.diff(np.asarray(batch), axis=1)).mean(axis=(1, 2, 3))

    trained = np.asarray(blur(images, training=True))
    softened = edge_energy(trained) < edge_energy(images) - 1e-3
    # About half of the images are blurred, none sharpened, all kept in [0, 1].
    assert 0 < softened.sum() < len(images)
    assert np.all(edge_energy(trained) <= edge_energy(images) + 1e-6)
    assert trained.min() >= 0 and trained.max() <= 1
    np.testing.assert_array_equal(blur(images, training=False), images)


def test_the_parameter_tuples_name_every_argument_of_build_cnn():
    arguments = list(inspect.signature(build_cnn).parameters)
    assert sorted(NETWORK_PARAMETERS) == sorted(
        set(arguments) - {"input_shape", "seed"}
    )
    assert set(SHAPE_PARAMETERS) < set(NETWORK_PARAMETERS)
    shape_arguments = set(inspect.signature(count_weights).parameters) - {"input_shape"}
    assert shape_arguments == set(SHAPE_PARAMETERS)


@pytest.mark.parametrize("name", ["count_weights", "resolve_padding"])
def test_the_helpers_made_private_still_work_with_a_future_warning(name):
    with pytest.warns(FutureWarning, match=f"architecture.{name} is a private helper"):
        helper = getattr(architecture, name)
    assert (
        helper
        is {"count_weights": count_weights, "resolve_padding": resolve_padding}[name]
    )
    with pytest.raises(AttributeError, match="no attribute 'build_network'"):
        architecture.build_network  # noqa: B018
