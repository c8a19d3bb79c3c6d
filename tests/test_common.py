"""scikit-learn's own conformance checks on every public estimator."""

import numpy as np
import pytest
import sklearn.utils.estimator_checks as ec
from PIL import Image
from sklearn.utils.estimator_checks import parametrize_with_checks

from pneumoclf import ImageLoader, PneumoniaCNNClassifier

# The checks feed tables far outside [0, 1] on purpose; the classifier's warning
# about unscaled images is right there, and only noise.
pytestmark = [
    pytest.mark.filterwarnings("ignore:X holds values in:UserWarning"),
    pytest.mark.usefixtures("eager_networks"),
]

CLASSIFIER_EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "stochastic mini-batch training: weighting an image twice is not the same "
        "optimisation path as showing it twice."
    ),
}


@parametrize_with_checks(
    [
        PneumoniaCNNClassifier(epochs=3, batch_size=1024, random_state=0, verbose=0),
        ImageLoader(),
    ],
    expected_failed_checks=lambda estimator: (
        CLASSIFIER_EXPECTED_FAILURES
        if isinstance(estimator, PneumoniaCNNClassifier)
        else {}
    ),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# --- ImageLoader: a transformer of file paths ------------------------------------
#
# scikit-learn runs its common checks only on estimators that take numeric 2-D
# arrays, and so skips an ImageLoader (its input tags say: a 1-D array of paths).
# The checks below apply to any estimator and are run on it directly; each check
# that needs numeric tables has a file-path counterpart here or in
# preprocessing/test_loader.py, listed with it.

LOADER_CHECKS = [
    ec.check_estimator_cloneable,
    ec.check_estimator_repr,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_mixin_order,
    ec.check_param_validation,
    ec.check_transformer_n_iter,
]

#: Checks that feed numeric tables, and where their file-path counterpart lives.
LOADER_COUNTERPARTS = {
    "check_estimators_fit_returns_self": (
        "test_fit_learns_nothing_and_transform_needs_no_fit"
    ),
    "check_estimators_pickle": "test_clone_and_pickle_keep_parameters_and_results",
    "check_fit_idempotent": "test_transform_of_paths_is_idempotent_and_pure",
    "check_dict_unchanged": "test_transform_of_paths_is_idempotent_and_pure",
    "check_dont_overwrite_parameters": "test_transform_of_paths_is_idempotent_and_pure",
    "check_methods_sample_order_invariance": "test_transform_follows_the_paths",
    "check_methods_subset_invariance": "test_transform_follows_the_paths",
    "check_readonly_memmap_input": "test_a_read_only_array_of_paths_loads",
    "check_estimators_empty_data_messages": "test_empty_input_is_refused",
    "check_dtype_object": "test_entries_that_are_not_paths_are_named_by_position",
    "check_pipeline_consistency": "test_grid_search_tunes_the_image_size_of_a_pipeline",
}


@pytest.mark.parametrize("check", LOADER_CHECKS, ids=lambda check: check.__name__)
def test_image_loader_passes_the_checks_that_apply_to_it(check):
    check("ImageLoader", ImageLoader())


@pytest.fixture(scope="module")
def loader_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loader_checks")
    paths = []
    for shade in range(0, 250, 25):
        path = folder / f"shade_{shade}.png"
        Image.new("L", (12, 9), shade).save(path)
        paths.append(str(path))
    return np.array(paths, dtype=object)


def test_transform_of_paths_is_idempotent_and_pure(loader_files):
    loader = ImageLoader(image_size=4, cache=False)
    params, state = loader.get_params(), dict(vars(loader))

    first = loader.fit(loader_files).transform(loader_files)
    again = loader.fit(loader_files).transform(loader_files)

    np.testing.assert_array_equal(first, again)
    assert loader.get_params() == params and vars(loader) == state


def test_transform_follows_the_paths(loader_files):
    loader = ImageLoader(image_size=4)
    images = loader.transform(loader_files)
    order = np.random.default_rng(0).permutation(len(loader_files))

    np.testing.assert_array_equal(loader.transform(loader_files[order]), images[order])
    np.testing.assert_array_equal(loader.transform(loader_files[3:7]), images[3:7])


def test_a_read_only_array_of_paths_loads(loader_files):
    read_only = loader_files.astype(str)
    read_only.setflags(write=False)

    images = ImageLoader(image_size=4).transform(read_only)

    np.testing.assert_array_equal(
        images, ImageLoader(image_size=4).transform(loader_files)
    )


def test_every_check_left_out_has_a_counterpart():
    from preprocessing import test_loader

    for check, counterpart in LOADER_COUNTERPARTS.items():
        assert callable(getattr(ec, check)), check
        assert callable(
            globals().get(counterpart) or getattr(test_loader, counterpart, None)
        ), counterpart
