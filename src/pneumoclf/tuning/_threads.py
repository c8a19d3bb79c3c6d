"""How many threads TensorFlow and the image loader use in a search."""

from numbers import Integral

from .._compat import Interval, validate_params


@validate_params(
    {"n_threads": [Interval(Integral, 1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def limit_threads(n_threads):
    """Cap the CPU threads TensorFlow uses in this process.

    Sets both of TensorFlow's thread pools, the one inside each operation and
    the one running independent operations side by side, to ``n_threads``, so
    that several training processes on one machine share its cores instead of
    each taking all of them (for example 4 workers of :func:`tune` with
    ``n_threads=4`` on 16 cores).

    TensorFlow fixes its thread pools when it runs its first operation, so call
    this first thing in the process, before any training, prediction or tensor.
    Calling it again with the same number is harmless.

    Parameters
    ----------
    n_threads : int
        Threads of each pool, at least 1.

    Raises
    ------
    RuntimeError
        If TensorFlow has already started with other pool sizes.
    """
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(n_threads)
        threading.set_inter_op_parallelism_threads(n_threads)
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot limit TensorFlow to {n_threads} thread(s): it has already run "
            "in this process, which fixed its thread pools at "
            f"{threading.get_intra_op_parallelism_threads()} and "
            f"{threading.get_inter_op_parallelism_threads()} threads (0 means one "
            "per core). Call limit_threads first, before anything trains, predicts "
            "or makes a tensor."
        ) from error
