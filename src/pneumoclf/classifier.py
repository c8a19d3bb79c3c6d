"""The scikit-learn face of the pneumonia CNN."""

import warnings
from numbers import Integral, Real

import keras
import numpy as np
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils import ClassifierTags, check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .architecture import OPTIMIZERS, build_cnn, resolve_padding
from .metrics import _check_label_order, _check_no_missing_labels
from .model_selection import patient_split

__all__ = ["PneumoniaCNNClassifier"]

#: Smallest validation part, in images of each class, worth monitoring.
MIN_VALIDATION_PER_CLASS = 2

# How far pixels may stray from [0, 1] (rounding after a rescaling) before the
# input is taken for unscaled images.
_UNIT_RANGE_SLACK = 1e-3


class PneumoniaCNNClassifier(KerasClassifier):
    """Binary pneumonia classifier: a small CNN on grayscale chest X-rays.

    A scikit-learn classifier built on scikeras' ``KerasClassifier``. Its
    defaults build the reference network (three blocks of a 5x5 convolution
    with 32 filters, ReLU and 2x2 max pooling; a dense layer of 128 ReLU units;
    one sigmoid output; batch size 64), trained with mild augmentation and
    early stopping on the AUC of a stratified validation part.

    Parameters
    ----------
    n_conv_blocks : int, default=3
        Number of convolution + ReLU + max-pooling blocks.
    filters : int, default=32
        Filters of every convolution.
    kernel_size : int, default=5
        Side of the square convolution kernels.
    dense_units : int, default=128
        Units of the hidden dense layer.
    dropout : float, default=0.0
        Dropout rate between the hidden dense layer and the output.
    batch_norm : bool, default=False
        Batch normalisation after each convolution.
    padding : {"auto", "valid", "same"}, default="auto"
        Convolution padding. ``"auto"`` is ``"valid"`` (the reference) when the
        images are large enough, ``"same"`` for small images and tables.
    optimizer : {"adam", "adamw", "rmsprop", "sgd"}, default="adam"
        Optimiser.
    learning_rate : float, default=1e-3
        Initial learning rate.
    lr_schedule : {"constant", "plateau"}, default="constant"
        ``"plateau"`` divides the learning rate by 5 when the validation AUC
        stalls for ``max(1, patience // 3)`` epochs.
    batch_size : int, default=64
        Images per gradient step.
    epochs : int, default=100
        Largest number of passes over the training images.
    early_stopping : bool, default=True
        Stop when the validation AUC has not improved for ``patience`` epochs
        and restore the weights of the best epoch.
    validation_fraction : float, default=0.1
        Share of the training images held out, stratified by class (and by
        patient when ``fit`` is given ``groups``), to monitor
        the AUC (early stopping, learning-rate schedule) and to choose the
        threshold when ``threshold="auto"``. Not used when neither needs it.
    patience : int, default=15
        Epochs without improvement of the validation AUC before stopping.
    class_weight : {"balanced"}, dict or None, default=None
        Weights of the classes in the loss, as in scikit-learn.
    rotation : float, default=0.03
        Largest random rotation while training, as a fraction of a full turn.
    zoom : float, default=0.1
        Largest random zoom while training, as a fraction of the image side.
    shift : float, default=0.05
        Largest random translation while training, as a fraction of the side.
    contrast : float, default=0.1
        Largest random contrast change while training.
    threshold : float in [0, 1] or "auto", default=0.5
        Decision threshold on the pneumonia probability used by :meth:`predict`.
        A number can be changed with ``set_params`` after fitting, without
        refitting. ``"auto"`` chooses it on the validation part with
        :func:`pneumoclf.metrics.choose_threshold` (F2 with a specificity
        guard, or the best specificity at ``target_recall``).
    target_recall : float in (0, 1] or None, default=None
        With ``threshold="auto"``, the recall the chosen threshold must reach.
    callbacks : list of keras.callbacks.Callback or None, default=None
        Extra Keras callbacks for training (for example Optuna pruning).
    random_state : int, RandomState instance or None, default=None
        Seeds weights, augmentation, shuffling and the validation split: the
        same data gives the same predictions on a CPU.
    verbose : int, default=0
        0 is silent, 1 shows a progress bar, 2 one line per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels, sorted; ``classes_[1]`` is the pneumonia class.
    model_ : keras.Model
        The trained network.
    history_ : dict of list
        Loss and AUC per epoch (``val_*`` on the validation part).
    image_shape_ : tuple of int
        ``(height, width, channels)`` of the training images.
    n_features_in_ : int
        ``X.shape[1]`` in ``fit``: the number of columns of a table, the
        height of images.
    threshold_ : float
        The threshold chosen in ``fit`` (``threshold`` itself when a number).
    n_epochs_ : int
        Epochs actually run.

    Notes
    -----
    ``X`` may be ``(n, h, w, c)`` or ``(n, h, w)`` images scaled to [0, 1], as
    :class:`~pneumoclf.ImageLoader` produces. A 2-D ``(n, k)`` table is read
    as ``n`` images of one row of ``k`` pixels; to feed flattened square
    images, reshape them to ``(n, h, w)`` first. ``fit`` and ``predict`` warn
    when ``X`` strays outside [0, 1], as unscaled 8-bit pixels (0 to 255) do:
    the contrast augmentation clips training images to [0, 1], so such
    values are not learned, nor predicted, as given.

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf import PneumoniaCNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 16, 16)).astype("float32")
    >>> y = np.array(["NORMAL", "PNEUMONIA"] * 20)
    >>> X[y == "PNEUMONIA", 4:12, 4:12] = 1.0
    >>> clf = PneumoniaCNNClassifier(epochs=5, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['NORMAL', 'PNEUMONIA'], dtype='<U9')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints: dict = {
        "n_conv_blocks": [Interval(Integral, 1, None, closed="left")],
        "filters": [Interval(Integral, 1, None, closed="left")],
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
        "dense_units": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "padding": [StrOptions({"auto", "valid", "same"})],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions({"constant", "plateau"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "rotation": [Interval(Real, 0, 0.5, closed="both")],
        "zoom": [Interval(Real, 0, 1, closed="left")],
        "shift": [Interval(Real, 0, 1, closed="left")],
        "contrast": [Interval(Real, 0, 1, closed="both")],
        "threshold": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
        "target_recall": [Interval(Real, 0, 1, closed="right"), None],
        "callbacks": [list, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # scikeras settings that this class fixes rather than exposes.
    model = None
    build_fn = None
    warm_start = False
    loss = "binary_crossentropy"
    metrics = None
    validation_batch_size = None
    validation_split = 0.0
    shuffle = True
    run_eagerly = False

    def __init__(
        self,
        *,
        n_conv_blocks=3,
        filters=32,
        kernel_size=5,
        dense_units=128,
        dropout=0.0,
        batch_norm=False,
        padding="auto",
        optimizer="adam",
        learning_rate=1e-3,
        lr_schedule="constant",
        batch_size=64,
        epochs=100,
        early_stopping=True,
        validation_fraction=0.1,
        patience=15,
        class_weight=None,
        rotation=0.03,
        zoom=0.1,
        shift=0.05,
        contrast=0.1,
        threshold=0.5,
        target_recall=None,
        callbacks=None,
        random_state=None,
        verbose=0,
    ):
        self.n_conv_blocks = n_conv_blocks
        self.filters = filters
        self.kernel_size = kernel_size
        self.dense_units = dense_units
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.padding = padding
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.class_weight = class_weight
        self.rotation = rotation
        self.zoom = zoom
        self.shift = shift
        self.contrast = contrast
        self.threshold = threshold
        self.target_recall = target_recall
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

    # Every fit starts afresh (early stopping and the validation part would
    # make epoch-by-epoch training ambiguous), so scikeras' partial_fit is hidden.
    partial_fit = available_if(lambda self: False)(KerasClassifier.partial_fit)

    # scikeras reads parameters from the instance dict and prints them one per
    # line; scikit-learn's signature-based versions are the ones users expect.
    _get_param_names = classmethod(BaseEstimator._get_param_names.__func__)
    __repr__ = BaseEstimator.__repr__
    score = ClassifierMixin.score

    def __sklearn_tags__(self):
        # scikeras lists ClassifierMixin after BaseEstimator, so the mixin's
        # tags never apply: set the classifier tags here.
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags(multi_class=False, poor_score=True)
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, groups=None):
        """Train the network on images and their labels.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images scaled to [0, 1]; see the class notes for 2-D input.
        y : array-like of shape (n,)
            Two labels, e.g. 0/1 or "NORMAL"/"PNEUMONIA"; the greater one is
            the pneumonia class.
        sample_weight : array-like of shape (n,), default=None
            Weights of the images in the loss.
        groups : array-like of shape (n,), default=None
            Patient of each image. When given, the validation part is held out
            by whole patients (see
            :func:`~pneumoclf.model_selection.patient_split`), so that no child
            has images on both sides; in a pipeline, pass it as
            ``pipe.fit(paths, y, cnn__groups=groups)``.

        Returns
        -------
        self : PneumoniaCNNClassifier
            The fitted classifier.
        """
        _check_callbacks(self.callbacks)
        if sample_weight is not None:
            # scikeras multiplies class weights into sample_weight in place.
            sample_weight = np.array(sample_weight, dtype=np.float64)
        if groups is not None:
            groups = column_or_1d(groups)
            check_consistent_length(y, groups)
        self._seed = self._draw_seed()
        # scikeras' fit passes no extra argument down to _fit_keras_model.
        self._fit_groups = groups
        try:
            with _seeded(self._seed):
                super().fit(X, y, sample_weight=sample_weight)
        finally:
            del self._fit_groups
        return self

    def predict_proba(self, X):
        """Probabilities of the two classes.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images of the shape used in ``fit``.

        Returns
        -------
        ndarray of shape (n, 2)
            Column 1 is the probability of pneumonia (``classes_[1]``).
        """
        check_is_fitted(self)
        X = self._validate_images(X)
        pneumonia = self._pneumonia_scores(X).astype(np.float64)
        return np.column_stack([1.0 - pneumonia, pneumonia])

    def predict(self, X):
        """Labels at the decision threshold.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images of the shape used in ``fit``.

        Returns
        -------
        ndarray of shape (n,)
            ``classes_[1]`` where the pneumonia probability reaches the
            threshold, ``classes_[0]`` elsewhere.
        """
        pneumonia = self.predict_proba(X)[:, 1]
        return self.classes_[(pneumonia >= self.decision_threshold()).astype(int)]

    def decision_threshold(self):
        """The threshold :meth:`predict` applies now.

        Returns
        -------
        float
            ``threshold`` when it is a number, else the one chosen in ``fit``.
        """
        if self.threshold == "auto":
            check_is_fitted(self)
            return self.threshold_
        return float(self.threshold)

    # --- scikeras hooks -------------------------------------------------

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        # scikeras calls this once per fit, with X and y and reset=True.
        X, y = validate_data(
            self, X, _binary_target(y), reset=True, allow_nd=True, dtype=np.float32
        )
        X = _image_batch(X)
        _warn_if_outside_unit_range(X)
        self.image_shape_ = X.shape[1:]
        return X, y

    def _keras_build_fn(self):
        self._check_padding_fits()
        return build_cnn(
            self.image_shape_,
            n_conv_blocks=self.n_conv_blocks,
            filters=self.filters,
            kernel_size=self.kernel_size,
            dense_units=self.dense_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            padding=self.padding,
            rotation=self.rotation,
            zoom=self.zoom,
            shift=self.shift,
            contrast=self.contrast,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            seed=self._seed,
        )

    def _initialize_callbacks(self):
        # Callbacks are assembled per fit in _fit_keras_model.
        pass

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch):
        train, validation = self._validation_split(y)
        weights = () if sample_weight is None else (sample_weight.astype(np.float32),)
        arrays = _as_tensors(X, y, *weights)
        validation_data = None
        if validation is not None:
            validation_data = _batches(arrays[:2], validation, self.batch_size)
        history = self.model_.fit(
            _batches(arrays, train, self.batch_size, shuffle=True, seed=self._seed),
            validation_data=validation_data,
            epochs=epochs,
            shuffle=False,  # the pipeline shuffles, seeded
            callbacks=self._training_callbacks(monitored=validation is not None),
            verbose=self.verbose,
        )
        self.history_ = {name: list(values) for name, values in history.history.items()}
        self.n_epochs_ = len(history.epoch)
        self.threshold_ = self._fitted_threshold(arrays[0], y, validation)

    # --- helpers --------------------------------------------------------

    def _check_padding_fits(self):
        if self.padding != "valid":
            return
        # "auto" picks "valid" exactly when every block keeps at least one pixel.
        fitting = resolve_padding(
            self.image_shape_,
            n_conv_blocks=self.n_conv_blocks,
            kernel_size=self.kernel_size,
        )
        if fitting != "valid":
            height, width, _ = self.image_shape_
            raise ValueError(
                f"padding='valid' leaves no pixel of {height}x{width} images after "
                f"{self.n_conv_blocks} blocks of {self.kernel_size}x"
                f"{self.kernel_size} convolutions and 2x2 pooling; use "
                "padding='auto' or 'same', fewer n_conv_blocks, a smaller "
                "kernel_size or larger images."
            )

    def _draw_seed(self):
        if self.random_state is None:
            return None
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def _validation_split(self, y):
        """Indices of the training and validation parts, stratified by class."""
        everything = np.arange(len(y))
        if not self._needs_validation():
            return everything, None
        n_validation = round(self.validation_fraction * len(y))
        labels, counts = np.unique(y, return_counts=True)
        if (
            n_validation < 2 * len(labels)
            or counts.min() < 2 * MIN_VALIDATION_PER_CLASS
        ):
            return self._without_validation(everything, f"{len(y)} training images are")
        if self._fit_groups is None:
            return train_test_split(
                everything,
                test_size=n_validation,
                stratify=y.reshape(-1),
                random_state=self._seed,
            )
        fraction = self.validation_fraction
        try:
            train, validation, _ = patient_split(
                everything,
                y.reshape(-1),
                groups=self._fit_groups,
                sizes=(1 - fraction, fraction, 0.0),
                random_state=self._seed,
            )
        except ValueError:
            n_patients = len(np.unique(self._fit_groups))
            return self._without_validation(everything, f"{n_patients} patients are")
        return train, validation

    def _without_validation(self, everything, too_few):
        warnings.warn(
            f"{too_few} too few to hold out a validation part of "
            f"{self.validation_fraction:.0%} with every class in it; training on all "
            "of them without early stopping or threshold choice.",
            UserWarning,
            stacklevel=5,
        )
        return everything, None

    def _needs_validation(self):
        return (
            self.early_stopping
            or self.lr_schedule == "plateau"
            or self.threshold == "auto"
        )

    def _training_callbacks(self, *, monitored):
        callbacks = list(self.callbacks or [])
        if monitored and self.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_auc",
                    mode="max",
                    patience=self.patience,
                    restore_best_weights=True,
                )
            )
        if monitored and self.lr_schedule == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_auc",
                    mode="max",
                    factor=0.2,
                    patience=max(1, self.patience // 3),
                )
            )
        return callbacks

    def _fitted_threshold(self, X, y, validation):
        if self.threshold != "auto":
            return float(self.threshold)
        if validation is None:
            warnings.warn(
                "No validation part to choose the threshold on; using 0.5.",
                UserWarning,
                stacklevel=4,
            )
            return 0.5
        from .metrics import choose_threshold

        scores = self._pneumonia_scores(X, validation)
        return float(
            choose_threshold(
                y[validation].reshape(-1),
                scores.reshape(-1),
                min_recall=self.target_recall,
            )
        )

    def _pneumonia_scores(self, X, rows=None):
        """The network's output for ``X`` (or its ``rows``), flattened."""
        if rows is None:
            rows = np.arange(len(X))
        (X,) = _as_tensors(X)
        scores = self.model_.predict(_batches((X,), rows, self.batch_size), verbose=0)
        return scores.reshape(-1)

    def _validate_images(self, X):
        # Column names are compared before the conversion to an array drops them.
        _check_feature_names(self, X, reset=False)
        X = check_array(X, allow_nd=True, dtype=np.float32, input_name="X")
        _check_image_shape(X.shape, self.image_shape_, type(self).__name__)
        _check_n_features(self, X, reset=False)
        X = _image_batch(X)
        _warn_if_outside_unit_range(X)
        return X


class _seeded:
    """Seed Python, NumPy and Keras for a fit, then restore the global RNGs."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        if self.seed is None:
            return
        import random

        self._python_state = random.getstate()
        self._numpy_state = np.random.get_state()  # noqa: NPY002
        keras.utils.set_random_seed(self.seed)

    def __exit__(self, *exc_info):
        if self.seed is None:
            return
        import random

        random.setstate(self._python_state)
        np.random.set_state(self._numpy_state)  # noqa: NPY002


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


def _check_callbacks(callbacks):
    for position, callback in enumerate(callbacks or []):
        if not isinstance(callback, keras.callbacks.Callback):
            raise InvalidParameterError(
                "The 'callbacks' parameter of PneumoniaCNNClassifier must hold "
                f"keras.callbacks.Callback instances; got {callback!r} at position "
                f"{position}."
            )


def _binary_target(y):
    """Check that ``y`` holds exactly two classes."""
    y = column_or_1d(y, warn=True)
    if len(y) == 0:
        raise ValueError(
            "y is empty: PneumoniaCNNClassifier needs labelled images of both "
            "classes to train."
        )
    _check_no_missing_labels(y, "y")
    _check_labels_of_one_kind(y)
    check_classification_targets(y)
    classes = np.unique(y)
    if len(classes) > 2:
        raise ValueError(
            "Only binary classification is supported: PneumoniaCNNClassifier tells "
            f"NORMAL from PNEUMONIA, but y holds {len(classes)} classes: "
            f"{classes.tolist()[:10]}."
        )
    if len(classes) < 2:
        raise ValueError(
            f"y holds one class only ({classes.tolist()}); PneumoniaCNNClassifier "
            "needs examples of both classes to train."
        )
    _check_label_order(classes, "y")
    return y


def _check_labels_of_one_kind(y):
    if y.dtype.kind != "O":
        return
    is_text = np.array([isinstance(label, str) for label in y])
    if is_text.any() and not is_text.all():
        text, other = y[np.argmax(is_text)], y[np.argmin(is_text)]
        raise ValueError(
            f"y mixes text labels such as {text!r} with other labels such as "
            f"{other!r}; use one kind, for example 'NORMAL'/'PNEUMONIA' or 0/1."
        )


def _warn_if_outside_unit_range(X):
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
            stacklevel=3,
        )


def _image_batch(X):
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


def _check_image_shape(shape, expected, name):
    if len(shape) not in (2, 3, 4):
        return  # _image_batch reports the rank
    image_shape = _image_batch(np.empty((0, *shape[1:]))).shape[1:]
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
