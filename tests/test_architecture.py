import itertools

import pytest

from pneumoclf.architecture import build_cnn, count_weights

SHAPES = [(64, 64, 1), (17, 23, 1), (5, 5, 3)]
SETTINGS = [
    dict(n_conv_blocks=blocks, kernel_size=kernel, batch_norm=norm, padding=padding)
    for blocks, kernel, norm, padding in itertools.product(
        [1, 3], [3, 5], [False, True], ["auto", "same"]
    )
]


@pytest.mark.parametrize("shape", SHAPES)
def test_count_weights_matches_the_built_network(shape):
    for settings in SETTINGS:
        network = build_cnn(shape, filters=4, dense_units=6, **settings)

        assert count_weights(shape, filters=4, dense_units=6, **settings) == (
            network.count_params()
        ), settings


def test_count_weights_of_an_enormous_network_costs_nothing():
    assert count_weights((64, 64, 1), dense_units=2**20) > 2**29


def test_count_weights_is_unchanged_by_augmentation():
    plain = count_weights((32, 32, 1), filters=4, dense_units=6)
    augmented = build_cnn(
        (32, 32, 1), filters=4, dense_units=6, rotation=0.1, zoom=0.2, shift=0.1,
        contrast=0.3,
    )  # fmt: skip

    assert augmented.count_params() == plain
