"""The fitted classifier inside an estimator, and its images."""

from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..classifier import PneumoniaCNNClassifier
from ..preprocessing import ImageLoader

# --- estimators and inputs ---------------------------------------------------


def _classifier_and_images(estimator, X):
    """The fitted classifier inside ``estimator`` and ``X`` as its image batch."""
    estimator = _without_threshold_wrapper(estimator)
    if isinstance(estimator, PneumoniaCNNClassifier):
        check_is_fitted(estimator)
        return estimator, estimator.as_image_batch(X)
    if isinstance(estimator, Pipeline) and isinstance(
        estimator.steps[-1][1], PneumoniaCNNClassifier
    ):
        check_is_fitted(estimator)
        classifier = estimator.steps[-1][1]
        return classifier, classifier.as_image_batch(estimator[:-1].transform(X))
    raise TypeError(
        "Heat maps need a fitted PneumoniaCNNClassifier or a Pipeline whose last "
        f"step is one; got {type(estimator).__name__}."
    )


def _without_threshold_wrapper(estimator):
    if isinstance(estimator, (FixedThresholdClassifier, TunedThresholdClassifierCV)):
        # As when these predict: the fitted copy, else the (prefit) estimator.
        return getattr(estimator, "estimator_", estimator.estimator)
    return estimator


def _taking_paths(estimator):
    """``estimator``, or a pipeline that loads image files for a bare classifier."""
    inner = _without_threshold_wrapper(estimator)
    if not isinstance(inner, PneumoniaCNNClassifier):
        return estimator
    check_is_fitted(inner)
    height, width = inner.image_shape_[:2]
    return Pipeline([("load", ImageLoader(image_size=(height, width))), ("cnn", inner)])


def _pads_images(estimator):
    """Whether ``estimator`` is a pipeline that starts with a padding loader."""
    inner = _without_threshold_wrapper(estimator)
    if not isinstance(inner, Pipeline):
        return False
    first = inner.steps[0][1]
    return isinstance(first, ImageLoader) and first.resize == "pad"
