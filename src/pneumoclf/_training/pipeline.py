"""The tf.data input of training and inference, and TensorFlow's retracing notices."""

import contextlib
import logging

import numpy as np


def as_tensors(*arrays):
    """TensorFlow copies of ``arrays``, made once for every pipeline over them."""
    import tensorflow as tf

    # Input pipelines run on the host, whatever device trains the network.
    with tf.device("/cpu:0"):
        return tuple(tf.convert_to_tensor(array) for array in arrays)


def batches(tensors, rows, batch_size, *, shuffle=False, seed=None):
    """Batches of the given ``rows`` of ``tensors``, as a tf.data pipeline.

    Keras would build a pipeline of its own from NumPy arrays, with tf.data
    autotuning; tearing that down at the end of an epoch can wait seconds for
    the autotuner's thread, which made training on two cores up to 1.5x slower.
    This pipeline gathers the same batches with autotuning off.
    """
    import tensorflow as tf

    order = tf.data.Dataset.from_tensor_slices(np.asarray(rows, dtype=np.int64))
    if shuffle:
        order = order.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    whole = tf.data.Dataset.from_tensors(tensors).repeat()
    gathered = tf.data.Dataset.zip(order.batch(batch_size), whole).map(
        lambda batch_rows, data: tuple(tf.gather(t, batch_rows) for t in data)
    )
    options = tf.data.Options()
    options.autotune.enabled = False
    return gathered.with_options(options).prefetch(2)


class _RetracingNotices(logging.Filter):
    """Drops TensorFlow's notice that tf.functions were traced again.

    Every fit builds a new network, whose training and prediction functions are
    traced once each; after a few fits TensorFlow counts those as retracing and
    advises against what is here by design.
    """

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


_RETRACING_NOTICES = _RetracingNotices()


@contextlib.contextmanager
def without_retracing_notices():
    """Hold back TensorFlow's retracing notices for the block's duration."""
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_RETRACING_NOTICES)
    try:
        yield
    finally:
        logger.removeFilter(_RETRACING_NOTICES)
