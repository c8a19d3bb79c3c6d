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
    order = _content_order(X)
    if len(X) <= batch_size:
        # One batch: a compiled call skips the per-call set-up of model.predict,
        # tens of milliseconds, and runs the same batch through the same layers.
        scores = _inference_function(model)(X[order]).numpy()
    else:
        (tensor,) = as_tensors(X)
        with without_retracing_notices():
            scores = model.predict(batches((tensor,), order, batch_size), verbose=0)
    unsorted = np.empty(len(X), dtype=np.float32)
    unsorted[order] = scores.reshape(-1)
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


# Each network's compiled inference, traced once, freed with the network.
_INFERENCE_FUNCTIONS = weakref.WeakKeyDictionary()


def _inference_function(model):
    """``model(images, training=False)`` as a tf.function for any batch size."""
    import tensorflow as tf

    function = _INFERENCE_FUNCTIONS.get(model)
    if function is None:
        network = weakref.ref(model)  # the cache must not keep the network alive
        signature = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

        @tf.function(input_signature=[signature])
        def function(images):
            return network()(images, training=False)

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
