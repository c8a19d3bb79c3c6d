"""Private: how :class:`~pneumoclf.PneumoniaCNNClassifier` trains and runs its network.

It serves the classifier alone, which hands it a frozen :class:`Settings` record
of its parameters, never itself. One purpose per module:

* ``settings``: the record and the seed of a fit;
* ``constraints``: parameter constraints scikit-learn has no word for;
* ``network``: the network the settings describe, built or counted;
* ``adapter``: scikeras, which sets up the network of a first fit;
* ``run``: one training run, the same for a first fit and a warm start;
* ``validation``: the validation part and what is chosen on it;
* ``continuing``: warm start and partial fit (labels, settings, history);
* ``pipeline``: the tf.data input, and TensorFlow's retracing notices;
* ``inference``: running a network, content-ordered and compiled once;
* ``images``: checks of image arrays;
* ``fitted_state``: checks of a fitted state restored from a file;
* ``gate``: the input check of a fitted network.
"""

from .adapter import new_network
from .constraints import PARAMETER_CONSTRAINTS
from .continuing import check_partial_fit_settings, partial_fit_classes
from .fitted_state import (
    FITTED_ATTRIBUTES,
    check_fitted_image_shape,
    check_fitted_state,
)
from .gate import input_check_results, warn_about_refused
from .images import (
    check_image_shape,
    image_batch,
    image_digests,
    per_image,
    training_digests,
    training_images,
    warn_if_outside_unit_range,
)
from .inference import check_scores, network_outputs, network_scores
from .network import build_network, check_same_architecture, count_network_weights
from .run import fitted_attributes, train
from .settings import Settings, draw_seed
from .validation import shared_patients_message

__all__ = [
    "FITTED_ATTRIBUTES",
    "PARAMETER_CONSTRAINTS",
    "Settings",
    "build_network",
    "check_fitted_image_shape",
    "check_fitted_state",
    "check_image_shape",
    "check_partial_fit_settings",
    "check_same_architecture",
    "check_scores",
    "count_network_weights",
    "draw_seed",
    "fitted_attributes",
    "image_batch",
    "image_digests",
    "input_check_results",
    "network_outputs",
    "network_scores",
    "new_network",
    "partial_fit_classes",
    "per_image",
    "shared_patients_message",
    "train",
    "training_digests",
    "training_images",
    "warn_about_refused",
    "warn_if_outside_unit_range",
]
