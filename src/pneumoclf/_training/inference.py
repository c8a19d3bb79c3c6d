"""Running a network on images: content-ordered, compiled once per network."""

import hashlib
import weakref

import numpy as np

from .pipeline import as_tensors, batches, without_retracing_notices


def network_scores(model, X, batch_size):
    """The network's pneumonia probability of each image in ``X``, as float32.

    The images go through the network in an order set by their content alone, so
    that reordering ``X`` cannot change any score: the kernels of a batch may
    round an image's result differently depending on its place in the batch.
    """
    (scores,) = _outputs(model, X, batch_size, features=False)
    return scores.reshape(-1)


def network_outputs(model, X, batch_size):
    """The pneumonia probability and the penultimate features of each image.

    In content order, as :func:`network_scores`.

    Returns
    -------
    scores : ndarray of shape (n,), float32
    features : ndarray of shape (n, dense_units), float32
        What the hidden dense layer gives the output layer.
    """
    scores, features = _outputs(model, X, batch_size, features=True)
    return scores.reshape(-1), features


def _outputs(model, X, batch_size, *, features):
    """The network's outputs for ``X``, computed in content order, in ``X``'s order."""
    order = _content_order(X)
    with without_retracing_notices():
        if len(X) <= batch_size:
            # One batch: a compiled call skips the per-call set-up of model.predict,
            # tens of milliseconds, and runs the same batch through the same layers.
            outputs = [out.numpy() for out in _inference_function(model)(X[order])]
        else:
            (tensor,) = as_tensors(X)
            network = _with_features(model) if features else model
            outputs = network.predict(batches((tensor,), order, batch_size), verbose=0)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    unsorted = []
    for output in outputs[: 2 if features else 1]:
        back = np.empty(output.shape, dtype=np.float32)
        back[order] = output
        unsorted.append(back)
    return unsorted


def check_scores(scores):
    """Refuse network outputs that are not probabilities (a broken network)."""
    n_bad = int(np.count_nonzero(~np.isfinite(scores)))
    if n_bad:
        raise ValueError(
            f"The network's output is NaN or infinite for {n_bad} of {len(scores)} "
            "images: the model is broken (a training that diverged, or damaged "
            "weights). Train it again."
        )


# Each network's two-output view and compiled inference, freed with the network.
_WITH_FEATURES = weakref.WeakKeyDictionary()
_INFERENCE_FUNCTIONS = weakref.WeakKeyDictionary()


def _with_features(model):
    """The network with a second output: its hidden dense layer's activations."""
    import keras

    both = _WITH_FEATURES.get(model)
    if both is None:
        both = keras.Model(
            model.inputs, [model.output, model.get_layer("dense").output]
        )
        _WITH_FEATURES[model] = both
    return both


def _inference_function(model):
    """``(scores, features)`` of images, as a tf.function for any batch size."""
    import tensorflow as tf

    function = _INFERENCE_FUNCTIONS.get(model)
    if function is None:
        both = weakref.ref(_with_features(model))  # the cache must not keep it alive
        signature = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

        @tf.function(input_signature=[signature])
        def function(images):
            return both()(images, training=False)

        _INFERENCE_FUNCTIONS[model] = function
    return function


def _content_order(X):
    """Positions of ``X``'s images sorted by a digest of their pixels."""
    digests = np.array(
        [
            int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=8).digest())
            for image in X
        ],
        dtype=np.uint64,
    )
    return np.argsort(digests, kind="stable")
