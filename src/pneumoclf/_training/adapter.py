"""The adaptation to scikeras, which sets up the network of a first fit.

scikeras' ``KerasClassifier`` encodes the labels (``classes_``) and builds the
network from the classifier's settings; training itself is the package's own
(:func:`~.run.train`), the same for a first fit and a warm start.
"""

import functools

from scikeras.wrappers import KerasClassifier
from sklearn import config_context

from .network import build_network


def new_network(settings, X, y, seed):
    """The untrained network and the sorted labels of a first fit on ``X, y``.

    Returns
    -------
    model : keras.Model
    classes : ndarray of shape (2,)
    """
    set_up = _ScikerasSetUp(
        model=functools.partial(build_network, settings, X.shape[1:], seed),
        loss="binary_crossentropy",
        verbose=settings.verbose,
    )
    # scikeras encodes the labels with scikit-learn transformers, which a global
    # transform_output="pandas" would turn into DataFrames.
    with config_context(transform_output="default"):
        set_up.initialize(X, y)
    return set_up.model_, set_up.classes_


class _ScikerasSetUp(KerasClassifier):
    """scikeras' classifier, trusted with validated input.

    Made afresh for every first fit and never cloned, so it is no estimator of
    its own.
    """

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        return X, y  # validated by the public class
