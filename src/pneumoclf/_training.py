"""Private: how :class:`~pneumoclf.PneumoniaCNNClassifier` trains and runs its network.

Everything the public class delegates lives here: the adaptation to scikeras (whose
``KerasClassifier`` does the label encoding, class weights and Keras set-up), the
tf.data input pipeline, the validation part held out of the training images, the
automatic threshold, the seed, and the checks of image arrays.
"""

import contextlib
import functools
import hashlib
import logging
import warnings
import weakref
from numbers import Integral, Real
from typing import NamedTuple

import keras
import numpy as np
from scikeras.wrappers import KerasClassifier
from sklearn import config_context
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import column_or_1d

from ._calibration import calibrated, fit_calibration, with_prevalence
from ._utils import check_label_order, check_no_missing_labels, is_pneumonia
from .architecture import build_cnn, count_weights, resolve_padding
from .datasets import patient_id
from .metrics import choose_threshold
from .model_selection import patient_split

#: Smallest validation part, in images of each class, worth monitoring.
MIN_VALIDATION_PER_CLASS = 2

#: Where an automatic threshold of 1 (pneumonia only where the network is exactly
#: certain, which no threshold may be) is capped: the largest float32 below 1,
#: which calls pneumonia wherever 1 would.
HIGHEST_THRESHOLD = float(np.nextafter(np.float32(1), np.float32(0)))


# Training images a fitted network is checked on, and the least spread of their
# scores that shows it tells images apart.
_COLLAPSE_SAMPLE = 256
_COLLAPSE_SPREAD = 1e-6

# Share of a fit's images that must be further images of a patient already
# counted before a fit without groups warns that its validation part leaks.
_SHARED_PATIENTS_SHARE = 0.05

# How far pixels may stray from [0, 1] (rounding after a rescaling) before the
# input is taken for unscaled images.
_UNIT_RANGE_SLACK = 1e-3


class UntrainedNetworkWarning(UserWarning):
    """A fit ended with a network that gives every training image the same output."""


class TrainedNetwork(NamedTuple):
    """What one training run gives the public classifier."""

    model: keras.Model
    classes: np.ndarray
    history: dict
    n_epochs: int
    chosen_threshold: float | None
    calibration: tuple | None
    prevalence: float
    validation_report: dict | None
    warnings: tuple  # messages or warnings the public class warns with, at its caller


def draw_seed(random_state):
    """The integer seed of one fit, or None for an unseeded one."""
    if random_state is None:
        return None
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def train_network(classifier, X, y, *, sample_weight, groups, seed):
    """Build and train the network that ``classifier``'s parameters describe.

    Parameters
    ----------
    classifier : PneumoniaCNNClassifier
        Read for its parameters only; nothing is set on it.
    X : ndarray of shape (n, h, w, c)
        Validated float32 images.
    y : ndarray of shape (n,)
        Validated labels of two classes.
    sample_weight, groups : ndarray of shape (n,) or None
        Weights in the loss, and the patient of each image.
    seed : int or None
        Seed of the weights, the augmentation, the shuffling and the split.

    Returns
    -------
    TrainedNetwork
    """
    check_prevalence(classifier.prevalence, classifier.calibration)
    if sample_weight is not None:
        # scikeras drops zero-weight images itself, which would misalign groups.
        kept = sample_weight != 0
        if not kept.any():
            raise ValueError(
                "Every sample_weight is zero: there is nothing to train on."
            )
        X, y, sample_weight = X[kept], y[kept], sample_weight[kept]
        groups = None if groups is None else groups[kept]
    trainer = _ScikerasTrainer(
        classifier, image_shape=X.shape[1:], seed=seed, groups=groups
    )
    # scikeras encodes the labels with scikit-learn transformers, which a global
    # transform_output="pandas" would turn into DataFrames.
    with config_context(transform_output="default"):
        trainer.fit(X, y, sample_weight=sample_weight)
    trainer.warnings_.extend(_check_trained(trainer.model_, X, classifier.batch_size))
    return TrainedNetwork(
        model=trainer.model_,
        classes=trainer.classes_,
        history=trainer.history_,
        n_epochs=trainer.n_epochs_,
        chosen_threshold=trainer.chosen_threshold_,
        calibration=trainer.calibration_,
        prevalence=trainer.prevalence_,
        validation_report=trainer.validation_report_,
        warnings=tuple(trainer.warnings_),
    )


class _ScikerasTrainer(KerasClassifier):
    """scikeras' classifier, set up for one fit of a ``PneumoniaCNNClassifier``.

    scikeras encodes the labels, turns ``class_weight`` into sample weights and
    builds the network; the hooks below replace its Keras ``fit`` call with the
    package's input pipeline, validation part and callbacks. It is made afresh
    for every fit and never cloned, so it is no estimator of its own.
    """

    def __init__(self, classifier, *, image_shape, seed, groups):
        super().__init__(
            model=functools.partial(build_network, classifier, image_shape, seed),
            loss="binary_crossentropy",
            batch_size=classifier.batch_size,
            epochs=classifier.epochs,
            class_weight=classifier.class_weight,
            verbose=classifier.verbose,
        )
        # Underscored, so that scikeras does not take them for parameters.
        self._classifier = classifier
        self._seed = seed
        self._groups = groups
        self.warnings_ = []

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        return X, y  # validated by the public class

    def _initialize_callbacks(self):
        pass  # assembled per fit in _fit_keras_model

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch):
        run = _run_training(
            self.model_,
            self._classifier,
            X,
            y,
            sample_weight=sample_weight,
            groups=self._groups,
            seed=self._seed,
            epochs=epochs,
            validate=True,
        )
        self.history_, self.n_epochs_ = run.history, run.n_epochs
        self.calibration_, self.chosen_threshold_ = run.calibration, run.threshold
        self.prevalence_ = run.prevalence
        self.validation_report_ = run.validation_report
        self.warnings_.extend(run.warnings)


class _Run(NamedTuple):
    """What one call of Keras ``fit`` and the choices after it give."""

    history: dict
    n_epochs: int
    calibration: tuple | None
    threshold: float | None
    prevalence: float
    validation_report: dict | None
    warnings: list


def _run_training(
    model, classifier, X, y, *, sample_weight, groups, seed, epochs, validate
):
    """Train ``model`` for up to ``epochs`` passes, then calibrate and choose.

    ``y`` holds 0/1 labels of shape (n, 1). With ``validate``, the validation
    part the classifier's settings need is held out of ``X``.
    """
    messages = []
    train, validation = np.arange(len(y)), None
    if validate and needs_validation(classifier):
        train, validation = _validation_split(classifier, y, groups, seed, messages)
    weights = () if sample_weight is None else (sample_weight.astype(np.float32),)
    arrays = _as_tensors(X, y, *weights)
    batch_size = classifier.batch_size
    validation_data = None
    if validation is not None:
        validation_data = _batches(arrays[:2], validation, batch_size)
    with _without_retracing_notices():
        history = model.fit(
            _batches(arrays, train, batch_size, shuffle=True, seed=seed),
            validation_data=validation_data,
            epochs=epochs,
            shuffle=False,  # the pipeline shuffles, seeded
            callbacks=_callbacks(classifier, monitored=validation is not None),
            verbose=classifier.verbose,
        )
    if not validate:
        calibration, threshold, prevalence, report = None, None, 0.5, None
    else:
        calibration, threshold, prevalence, report = _calibrate_and_choose_threshold(
            model, classifier, X, y, validation, sample_weight, groups, messages
        )
    return _Run(
        history={name: list(values) for name, values in history.history.items()},
        n_epochs=len(history.epoch),
        calibration=calibration,
        threshold=threshold,
        prevalence=prevalence,
        validation_report=report,
        warnings=messages,
    )


def _validation_split(classifier, y, groups, seed, messages):
    """Indices of the training and validation parts, stratified by class."""
    everything = np.arange(len(y))
    fraction = classifier.validation_fraction
    n_validation = round(fraction * len(y))
    _, counts = np.unique(y, return_counts=True)
    if (
        len(counts) < 2
        or n_validation < 2 * len(counts)
        or counts.min() < 2 * MIN_VALIDATION_PER_CLASS
    ):
        return _without_validation(
            classifier, everything, f"{len(y)} training images are", messages
        )
    if groups is None:
        return train_test_split(
            everything,
            test_size=n_validation,
            stratify=y.reshape(-1),
            random_state=seed,
        )
    try:
        train, validation, _ = patient_split(
            everything,
            y.reshape(-1),
            groups=groups,
            sizes=(1 - fraction, fraction, 0.0),
            random_state=seed,
        )
    except ValueError:
        n_patients = len(np.unique(groups))
        return _without_validation(
            classifier, everything, f"{n_patients} patients are", messages
        )
    return train, validation


def _without_validation(classifier, everything, too_few, messages):
    messages.append(
        f"{too_few} too few to hold out a validation part of "
        f"{classifier.validation_fraction:.0%} with every class in it; "
        "training on all of them without early stopping or threshold choice."
    )
    return everything, None


def _calibrate_and_choose_threshold(
    model, classifier, X, y, validation, sample_weight, groups, messages
):
    """Fit the calibration and the automatic threshold on the validation part.

    The threshold weighs each validation image by its ``sample_weight``.

    Returns
    -------
    calibration, threshold, prevalence, validation_report
    """
    prevalence = float(np.mean(y))
    if validation is None:
        threshold = None
        if classifier.calibration is not None:
            messages.append(
                "No validation part to calibrate on; the probabilities are the "
                "network's own."
            )
        if classifier.threshold == "auto":
            messages.append("No validation part to choose the threshold on; using 0.5.")
            threshold = 0.5
        return None, threshold, prevalence, None
    y_validation = y[validation].reshape(-1)
    scores = network_scores(model, X[validation], classifier.batch_size)
    if classifier.calibration is None and classifier.threshold != "auto":
        report = _validation_report(
            y_validation, scores, classifier.threshold, groups, validation
        )
        return None, None, prevalence, report
    prevalence = float(np.mean(y_validation))
    calibration = None
    if classifier.calibration is not None:
        calibration = fit_calibration(scores, y_validation, classifier.calibration)
    threshold = None
    if classifier.threshold == "auto":
        chosen = choose_threshold(
            y_validation,
            calibrated(scores, calibration),
            min_recall=classifier.target_recall,
            sample_weight=(
                None if sample_weight is None else sample_weight[validation]
            ),
        )
        threshold = min(float(chosen), HIGHEST_THRESHOLD)
    # As predict sees them: at the deployment prevalence, when one is set.
    deployed = functools.partial(
        with_prevalence, trained=prevalence, deployed=classifier.prevalence
    )
    report = _validation_report(
        y_validation,
        deployed(calibrated(scores, calibration)),
        classifier.threshold if threshold is None else deployed(threshold),
        groups,
        validation,
    )
    return calibration, threshold, prevalence, report


def _validation_report(y_validation, probabilities, threshold, groups, validation):
    """What the validation part shows at ``threshold``: its size and the figures."""
    pneumonia = y_validation == 1
    called = is_pneumonia(probabilities, threshold)
    return {
        "n_images": len(y_validation),
        "n_pneumonia": int(pneumonia.sum()),
        "n_patients": None if groups is None else len(np.unique(groups[validation])),
        "threshold": float(threshold),
        "recall": float(called[pneumonia].mean()),
        "specificity": float(1 - called[~pneumonia].mean()),
        "roc_auc": float(roc_auc_score(y_validation, probabilities)),
    }


def continue_training(
    classifier, model, classes, X, y, *, sample_weight, groups, seed, epochs, validate
):
    """Train a network further: ``fit`` with ``warm_start``, and ``partial_fit``.

    Parameters
    ----------
    classifier : PneumoniaCNNClassifier
        Read for its parameters only.
    model : keras.Model
        The compiled network to train further; its weights and optimiser state
        carry on, at the classifier's ``learning_rate``.
    classes : ndarray of shape (2,)
        The labels, sorted; ``y`` holds some of them.
    X, y : ndarray
        Validated images and labels.
    sample_weight, groups : ndarray of shape (n,) or None
    seed : int or None
    epochs : int
        Most passes over the images.
    validate : bool
        Whether to hold out the validation part the settings need (``fit``), or
        to train on every image and choose nothing (``partial_fit``).

    Returns
    -------
    TrainedNetwork
        The history and epochs of this call alone.
    """
    _check_labels_among(y, classes)
    weights = _class_and_sample_weights(classifier.class_weight, y, sample_weight)
    kept = weights != 0
    if not kept.any():
        raise ValueError("Every sample_weight is zero: there is nothing to train on.")
    X, y, weights = X[kept], y[kept], weights[kept]
    groups = None if groups is None else groups[kept]
    encoded = (y == classes[1]).astype(np.float32).reshape(-1, 1)
    model.optimizer.learning_rate.assign(classifier.learning_rate)
    run = _run_training(
        model,
        classifier,
        X,
        encoded,
        sample_weight=weights,
        groups=groups,
        seed=seed,
        epochs=epochs,
        validate=validate,
    )
    messages = run.warnings + _check_trained(model, X, classifier.batch_size)
    return TrainedNetwork(
        model=model,
        classes=classes,
        history=run.history,
        n_epochs=run.n_epochs,
        chosen_threshold=run.threshold,
        calibration=run.calibration,
        prevalence=run.prevalence,
        validation_report=run.validation_report,
        warnings=tuple(messages),
    )


def shared_patients_message(paths):
    """Say so when many of ``paths`` belong to patients with several images.

    ``paths`` are the files a fit's images came from (None when unknown); the
    fit holds out its validation part by image, as it got no patient groups.
    """
    if paths is None:
        return None
    n_images, n_patients = len(paths), len({patient_id(path) for path in paths})
    if n_images - n_patients < _SHARED_PATIENTS_SHARE * n_images:
        return None
    return (
        f"The {n_images} images of this fit belong to {n_patients} patients (by "
        "their file names), but fit got no groups: the validation part, which "
        "stops training and chooses the threshold, is held out by image, so "
        "images of one child fall on both sides and it flatters the network. "
        "Pass the patients: pipe.fit(paths, y, cnn__groups=groups), or in a "
        "search cnn.set_fit_request(groups=True) with metadata routing."
    )


def check_partial_fit_settings(classifier):
    """Refuse the settings that need a validation part, which partial_fit lacks."""
    needing = []
    if classifier.threshold == "auto":
        needing.append("threshold='auto'")
    if classifier.calibration is not None:
        needing.append(f"calibration={classifier.calibration!r}")
    if needing:
        raise ValueError(
            "partial_fit trains on every image it is given, with no validation "
            "part to choose a threshold or calibrate on, so it cannot honour "
            f"{' and '.join(needing)}. Set a number as threshold (tune it afterwards, "
            "for example with TunedThresholdClassifierCV) and calibration=None, or "
            "train further with fit and warm_start=True."
        )


def partial_fit_classes(y, classes, fitted_classes):
    """The two labels of a partial fit: given, fitted, or those of ``y``.

    Refuses a ``classes`` that differs from the fitted one and labels of ``y``
    outside the classes.
    """
    check_no_missing_labels(y, "y")
    if classes is not None:
        classes = np.unique(column_or_1d(classes))
        if fitted_classes is not None and not np.array_equal(classes, fitted_classes):
            raise ValueError(
                f"classes={classes.tolist()} differs from the classes of the first "
                f"partial_fit, {fitted_classes.tolist()}."
            )
    labels = classes if classes is not None else fitted_classes
    if labels is None:
        labels = np.unique(y)
        if len(labels) != 2:
            raise ValueError(
                f"The first partial_fit needs both classes: pass classes=[...] when "
                f"y holds one only (here {labels.tolist()})."
            )
    if len(labels) != 2:
        raise ValueError(
            f"classes must hold the two labels, NORMAL and PNEUMONIA; got "
            f"{labels.tolist()}."
        )
    check_label_order(labels, "classes")
    _check_labels_among(y, labels)
    return labels


def _check_labels_among(y, classes):
    unknown = np.setdiff1d(np.unique(y), classes)
    if unknown.size:
        raise ValueError(
            f"y holds labels {unknown.tolist()[:10]} that are not among the classes "
            f"{classes.tolist()} of the network it would train."
        )


def check_same_architecture(classifier, model, image_shape):
    """Refuse to train further a network that the parameters no longer describe."""
    expected = count_network_weights(classifier, image_shape)
    if expected != model.count_params():
        raise ValueError(
            "warm_start trains the fitted network further, but its architecture "
            "parameters (n_conv_blocks, filters, kernel_size, dense_units, "
            f"batch_norm, padding, head) now describe a network of {expected} weights, "
            f"not its {model.count_params()}. Restore them, or fit with "
            "warm_start=False."
        )


def joined_history(earlier, n_earlier, later, n_later):
    """Two training histories end to end; a figure one of them lacks is NaN."""
    names = list(earlier) + [name for name in later if name not in earlier]
    return {
        name: list(earlier.get(name, [float("nan")] * n_earlier))
        + list(later.get(name, [float("nan")] * n_later))
        for name in names
    }


def _class_and_sample_weights(class_weight, y, sample_weight):
    """Per-image weights as scikeras forms them: class weight times sample weight."""
    weights = np.ones(len(y)) if sample_weight is None else sample_weight.copy()
    if class_weight is not None:
        weights *= compute_sample_weight(class_weight, y)
    return weights


def _check_trained(model, X, batch_size):
    """Refuse a training that diverged; return a warning if it learned nothing.

    A network with NaN weights, or one that gives different images the same
    output, would call every X-ray the same, most often NORMAL: the worst silent
    failure of a recall-first screening. NaN weights are an error. A network that
    gives every image the same output may still be what a search's briefest trial
    leaves, so it is a warning.

    Returns
    -------
    list of UntrainedNetworkWarning
        The warning, when the outputs do not differ.
    """
    broken = [w.name for w in model.weights if not np.all(np.isfinite(w.numpy()))]
    if broken:
        raise ValueError(
            f"Training diverged: the network's weights hold NaN or infinite values "
            f"(in {', '.join(broken[:3])}). Lower learning_rate and train again."
        )
    sample = X[: min(len(X), _COLLAPSE_SAMPLE)]
    scores = network_scores(model, sample, batch_size)
    check_scores(scores)
    images_differ = not np.all(sample == sample[:1])
    if images_differ and np.ptp(scores) < _COLLAPSE_SPREAD:
        message = (
            f"The network gives every training image the same pneumonia "
            f"probability ({float(scores[0]):.4g}): it has not learned to tell NORMAL "
            "from PNEUMONIA. Train longer, or lower learning_rate if it diverged."
        )
        return [UntrainedNetworkWarning(message)]
    return []


def check_scores(scores):
    """Refuse network outputs that are not probabilities (a broken network)."""
    n_bad = int(np.count_nonzero(~np.isfinite(scores)))
    if n_bad:
        raise ValueError(
            f"The network's output is NaN or infinite for {n_bad} of {len(scores)} "
            "images: the model is broken (a training that diverged, or damaged "
            "weights). Train it again."
        )


def check_prevalence(prevalence, calibration):
    """Refuse a deployment prevalence for probabilities that are not calibrated."""
    if prevalence is not None and calibration is None:
        raise ValueError(
            f"prevalence={prevalence} needs calibrated probabilities: fit with "
            "calibration='platt' or 'temperature'."
        )


def needs_validation(classifier):
    """Whether ``classifier``'s settings need a validation part."""
    return (
        classifier.early_stopping
        or classifier.lr_schedule == "plateau"
        or classifier.threshold == "auto"
        or classifier.calibration is not None
    )


def build_network(classifier, image_shape, seed=None):
    """The untrained, compiled network ``classifier``'s parameters describe."""
    check_padding_fits(classifier, image_shape)
    return build_cnn(
        image_shape,
        **_architecture(classifier),
        dropout=classifier.dropout,
        rotation=classifier.rotation,
        zoom=classifier.zoom,
        shift=classifier.shift,
        contrast=classifier.contrast,
        blur=classifier.blur,
        optimizer=classifier.optimizer,
        learning_rate=classifier.learning_rate,
        label_smoothing=classifier.label_smoothing,
        seed=seed,
    )


def count_network_weights(classifier, image_shape):
    """How many weights :func:`build_network` would create, without building it."""
    check_padding_fits(classifier, image_shape)
    return count_weights(image_shape, **_architecture(classifier))


def _architecture(classifier):
    """The parameters that decide the shapes of the network's weights."""
    return dict(
        n_conv_blocks=classifier.n_conv_blocks,
        filters=classifier.filters,
        kernel_size=classifier.kernel_size,
        dense_units=classifier.dense_units,
        batch_norm=classifier.batch_norm,
        padding=classifier.padding,
        head=classifier.head,
    )


def check_padding_fits(classifier, image_shape):
    """Refuse ``padding="valid"`` when the blocks would leave no pixel."""
    if classifier.padding != "valid":
        return
    # "auto" picks "valid" exactly when every block keeps at least one pixel.
    fitting = resolve_padding(
        image_shape,
        n_conv_blocks=classifier.n_conv_blocks,
        kernel_size=classifier.kernel_size,
    )
    if fitting != "valid":
        height, width, _ = image_shape
        raise ValueError(
            f"padding='valid' leaves no pixel of {height}x{width} images after "
            f"{classifier.n_conv_blocks} blocks of {classifier.kernel_size}x"
            f"{classifier.kernel_size} convolutions and 2x2 pooling; use "
            "padding='auto' or 'same', fewer n_conv_blocks, a smaller "
            "kernel_size or larger images."
        )


def _callbacks(classifier, *, monitored):
    callbacks = list(classifier.callbacks or [])
    watched = {"monitor": f"val_{classifier.monitor}"}
    watched["mode"] = "min" if classifier.monitor == "loss" else "max"
    if monitored and classifier.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                **watched,
                patience=classifier.patience,
                restore_best_weights=True,
            )
        )
    if monitored and classifier.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                **watched,
                factor=0.2,
                patience=max(1, classifier.patience // 3),
            )
        )
    return callbacks


def check_class_weight(class_weight):
    """Refuse class weights that are negative, zero for every class, or not finite."""
    if not isinstance(class_weight, dict):
        return
    weights = list(class_weight.values())
    if not all(
        isinstance(w, Real) and not isinstance(w, bool) and np.isfinite(w) and w >= 0
        for w in weights
    ) or not any(w > 0 for w in weights):
        raise InvalidParameterError(
            "The 'class_weight' parameter of PneumoniaCNNClassifier must give each "
            "class a finite, non-negative weight, and some class a positive one; got "
            f"{class_weight!r}."
        )


def check_callbacks(callbacks):
    """Refuse ``callbacks`` entries that are not Keras callbacks."""
    for position, callback in enumerate(callbacks or []):
        if not isinstance(callback, keras.callbacks.Callback):
            raise InvalidParameterError(
                "The 'callbacks' parameter of PneumoniaCNNClassifier must hold "
                f"keras.callbacks.Callback instances; got {callback!r} at position "
                f"{position}."
            )


# ------------------------------------------------------------------ running the network


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
        (tensor,) = _as_tensors(X)
        with _without_retracing_notices():
            scores = model.predict(_batches((tensor,), order, batch_size), verbose=0)
    unsorted = np.empty(len(X), dtype=np.float32)
    unsorted[order] = scores.reshape(-1)
    return unsorted


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
def _without_retracing_notices():
    """Hold back TensorFlow's retracing notices for the block's duration."""
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_RETRACING_NOTICES)
    try:
        yield
    finally:
        logger.removeFilter(_RETRACING_NOTICES)


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


def _as_tensors(*arrays):
    """TensorFlow copies of ``arrays``, made once for every pipeline over them."""
    import tensorflow as tf

    # Input pipelines run on the host, whatever device trains the network.
    with tf.device("/cpu:0"):
        return tuple(tf.convert_to_tensor(array) for array in arrays)


def _batches(tensors, rows, batch_size, *, shuffle=False, seed=None):
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
    batches = tf.data.Dataset.zip(order.batch(batch_size), whole).map(
        lambda batch_rows, data: tuple(tf.gather(t, batch_rows) for t in data)
    )
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.with_options(options).prefetch(2)


# ------------------------------------------------------------------ image arrays


def warn_if_outside_unit_range(X):
    """Warn when images are not scaled to [0, 1], as unscaled 8-bit pixels are."""
    # The contrast augmentation clips training images to [0, 1], and a network
    # trained on [0, 1] saturates on larger values: either way the prediction is
    # not what the user meant.
    low, high = float(X.min()), float(X.max())
    if low < -_UNIT_RANGE_SLACK or high > 1 + _UNIT_RANGE_SLACK:
        warnings.warn(
            f"X holds values in [{low:g}, {high:g}], but PneumoniaCNNClassifier "
            "expects images scaled to [0, 1], as ImageLoader gives them: divide "
            "8-bit pixels by 255 and 16-bit ones by 65535.",
            UserWarning,
            stacklevel=4,
        )


def image_batch(X):
    """View a validated array as ``(n, h, w, c)`` images."""
    if X.ndim == 2:
        batch = X[:, np.newaxis, :, np.newaxis]
    elif X.ndim == 3:
        batch = X[..., np.newaxis]
    elif X.ndim == 4:
        batch = X
    else:
        raise ValueError(
            f"Expected images of shape (n, h, w, c) or (n, h, w), or a 2-D table; "
            f"got an array with {X.ndim} dimensions, shape {X.shape}."
        )
    if 0 in batch.shape[1:]:
        raise ValueError(
            "Images need at least one row, one column and one channel; got X of "
            f"shape {X.shape}."
        )
    return batch


def check_image_shape(shape, expected, name):
    """Say how images of ``shape`` differ from the ``expected`` (h, w, c)."""
    if len(shape) not in (2, 3, 4):
        return  # image_batch reports the rank
    image_shape = image_batch(np.empty((0, *shape[1:]))).shape[1:]
    if image_shape == tuple(expected):
        return
    if len(shape) == 2 and expected[0] == 1:
        raise ValueError(
            f"X has {shape[1]} features, but {name} is expecting {expected[1]} "
            "features as input."
        )
    h, w, c = expected
    if tuple(shape) in ((h, w), (h, w, c)):
        raise ValueError(
            f"X of shape {tuple(shape)} is one image, but {name} predicts a batch of "
            "images: pass X[np.newaxis] for a batch of one."
        )
    if image_shape[:2] == (h, w):
        raise ValueError(
            f"Images of {image_shape[2]} channels do not match the {c}-channel "
            f"images this {name} was fitted on."
        )
    raise ValueError(
        f"Images of shape {image_shape[0]}x{image_shape[1]}x{image_shape[2]} "
        f"(height x width x channels) do not match the {h}x{w}x{c} images this "
        f"{name} was fitted on; load them with the same image size (for example "
        f"ImageLoader(image_size=({h}, {w})))."
    )


# ------------------------------------------------------------------ fitted state

_OPTIONAL_ATTRIBUTES = frozenset({"feature_names_in_"})


def check_fitted_state(state, names):
    """Refuse a fitted state whose parts are missing, unknown or disagree."""
    expected = {"model_", *names}
    missing = sorted(expected - _OPTIONAL_ATTRIBUTES - state.keys())
    unknown = sorted(state.keys() - expected)
    if missing or unknown:
        raise ValueError(
            f"fitted state: missing attributes {missing}, unknown attributes {unknown}."
        )
    image_shape = state["image_shape_"]
    check_fitted_image_shape(image_shape)
    _check_classes(state["classes_"])
    _check_network(state["model_"], image_shape)
    threshold = state["chosen_threshold_"]
    if threshold is not None and not (
        isinstance(threshold, float) and 0 <= threshold < 1
    ):
        raise ValueError(
            f"chosen_threshold_ must be None or a number in [0, 1), got {threshold!r}."
        )
    n_features = state["n_features_in_"]
    if n_features not in image_shape[:2]:
        raise ValueError(
            f"n_features_in_ = {n_features!r} fits neither side of image_shape_ "
            f"{image_shape}."
        )
    _check_calibration(state["calibration_"], state["training_prevalence_"])
    _check_validation_report(state["validation_report_"])
    n_epochs = state["n_epochs_"]
    if not (isinstance(n_epochs, int) and n_epochs >= 0):
        raise ValueError(f"n_epochs_ must be a non-negative integer, got {n_epochs!r}.")
    if not isinstance(state["history_"], dict):
        raise ValueError("history_ must be a dict of lists of numbers.")


def check_fitted_image_shape(image_shape):
    """Refuse an ``image_shape_`` that is not three positive integers."""
    if not (
        isinstance(image_shape, tuple)
        and len(image_shape) == 3
        and all(
            isinstance(side, int) and not isinstance(side, bool) and side > 0
            for side in image_shape
        )
    ):
        raise ValueError(
            f"image_shape_ must be 3 positive integers, got {image_shape!r}."
        )


def _check_calibration(calibration, prevalence):
    if calibration is not None and not (
        isinstance(calibration, tuple)
        and len(calibration) == 2
        and all(
            isinstance(value, float) and np.isfinite(value) for value in calibration
        )
        and calibration[0] > 0
    ):
        raise ValueError(
            "calibration_ must be None or (slope, intercept), two finite numbers with "
            f"a positive slope; got {calibration!r}."
        )
    if not (isinstance(prevalence, float) and 0 < prevalence < 1):
        raise ValueError(
            f"training_prevalence_ must be a number in (0, 1), got {prevalence!r}."
        )


#: The entries of ``validation_report_``, and which of them are shares in [0, 1].
VALIDATION_REPORT_KEYS = (
    "n_images",
    "n_pneumonia",
    "n_patients",
    "threshold",
    "recall",
    "specificity",
    "roc_auc",
)
_VALIDATION_SHARES = ("threshold", "recall", "specificity", "roc_auc")


def _check_validation_report(report):
    if report is None:
        return
    if not isinstance(report, dict) or sorted(report) != sorted(VALIDATION_REPORT_KEYS):
        raise ValueError(
            f"validation_report_ must be None or a dict of {VALIDATION_REPORT_KEYS}, "
            f"got {report!r}."
        )
    for name in _VALIDATION_SHARES:
        value = report[name]
        if not (isinstance(value, float) and 0 <= value <= 1):
            raise ValueError(
                f"validation_report_[{name!r}] must be a number in [0, 1], got "
                f"{value!r}."
            )
    counts = [report["n_images"], report["n_pneumonia"]]
    if report["n_patients"] is not None:
        counts.append(report["n_patients"])
    if not all(isinstance(count, int) and count >= 0 for count in counts):
        raise ValueError(
            f"validation_report_ counts must be non-negative integers, got {report!r}."
        )


def _check_classes(classes):
    if not (isinstance(classes, np.ndarray) and classes.shape == (2,)):
        raise ValueError(f"classes_ must hold two labels, got {classes!r}.")
    if not classes[0] < classes[1]:
        raise ValueError(
            f"classes_ must be two distinct labels in sorted order, got "
            f"{classes.tolist()}: the greater one is the pneumonia class."
        )
    check_label_order(classes, "classes_")


def _check_network(model, image_shape):
    if not isinstance(model, keras.Model):
        raise ValueError(f"model_ must be a keras.Model, got {type(model).__name__}.")
    if tuple(model.input_shape[1:]) != image_shape:
        raise ValueError(
            f"model_ takes inputs of shape {tuple(model.input_shape[1:])}, but "
            f"image_shape_ is {image_shape}."
        )
    if tuple(model.output_shape) != (None, 1):
        raise ValueError(
            f"model_ must give one pneumonia probability per image, but its output "
            f"has shape {model.output_shape}."
        )
