"""The scikit-learn face of the pneumonia CNN."""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import ClassifierTags
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _training
from ._calibration import calibrated, check_prevalence, with_prevalence
from ._compat import (
    check_feature_names,
    check_n_features,
    fit_context,
    validate_parameters,
)
from ._docstring import NETWORK_PARAMETER_DOCS, Substitution
from ._utils import binary_target, is_pneumonia
from .preprocessing import paths_of

__all__ = ["PneumoniaCNNClassifier"]


@Substitution(**NETWORK_PARAMETER_DOCS)
class PneumoniaCNNClassifier(ClassifierMixin, BaseEstimator):
    """Binary pneumonia classifier: a small CNN on grayscale chest X-rays.

    A scikit-learn classifier; the network is built and trained through
    scikeras' ``KerasClassifier``. Its defaults build the reference network
    (three blocks of a 5x5 convolution with 32 filters, ReLU and 2x2 max
    pooling; a dense layer of 128 ReLU units; one sigmoid output; batch size
    64), trained with mild augmentation and early stopping on the AUC of a
    stratified validation part.

    Parameters
    ----------
    n_conv_blocks : int, default=3
        %(n_conv_blocks)s
    filters : int, default=32
        %(filters)s
    kernel_size : int, default=5
        %(kernel_size)s
    dense_units : int, default=128
        %(dense_units)s
    dropout : float, default=0.0
        %(dropout)s
    batch_norm : bool, default=False
        %(batch_norm)s
    padding : {"auto", "valid", "same"}, default="auto"
        %(padding)s
    head : {"flatten", "global_average"}, default="flatten"
        %(head)s
    optimizer : {"adam", "adamw", "rmsprop", "sgd"}, default="adam"
        %(optimizer)s
    learning_rate : float, default=1e-3
        %(learning_rate)s
    label_smoothing : float in [0, 1), default=0.0
        %(label_smoothing)s
    lr_schedule : {"constant", "plateau"}, default="constant"
        ``"plateau"`` divides the learning rate by 5 when the monitored
        validation figure stalls for ``max(1, patience // 3)`` epochs.
    batch_size : int, default=64
        Images per gradient step.
    epochs : int, default=100
        Largest number of passes over the training images.
    early_stopping : bool, default=True
        Stop when the monitored validation figure has not improved for
        ``patience`` epochs and restore the weights of the best epoch.
    monitor : {"loss", "auc"}, default="loss"
        What early stopping and the learning-rate schedule watch on the
        validation part. The AUC saturates within a few epochs on small data
        (ties do not count as improvement) and can keep a barely trained network
        whose probabilities all sit near 0.5; the loss keeps improving while the
        probabilities sharpen.
    validation_fraction : float, default=0.1
        Share of the training images held out, stratified by class (and by
        patient when ``fit`` is given ``groups``), to monitor training (early
        stopping, learning-rate schedule), to calibrate the probabilities and to
        choose the threshold when ``threshold="auto"``. Not used when none of
        these needs it.
    patience : int, default=15
        Epochs without improvement of the monitored figure before stopping.
    class_weight : {"balanced"}, dict or None, default=None
        Weights of the classes in the loss, as in scikit-learn.
    rotation : float, default=0.03
        %(rotation)s
    zoom : float, default=0.1
        %(zoom)s
    shift : float, default=0.05
        %(shift)s
    contrast : float, default=0.1
        %(contrast)s
    blur : float, default=0.0
        %(blur)s
    threshold : float in [0, 1) or "auto", default=0.5
        Decision threshold on the pneumonia probability used by :meth:`predict`
        (pneumonia where the probability reaches it; 1 is refused, as it would
        call pneumonia only where the network is exactly certain).
        A number can be changed with ``set_params`` after fitting, without
        refitting. ``"auto"`` chooses it on the validation part with
        :func:`pneumoclf.metrics.choose_threshold` (F2 with a specificity
        guard, or the best specificity at ``target_recall``).
    target_recall : float in (0, 1] or None, default=None
        With ``threshold="auto"``, the recall the chosen threshold must reach.
    calibration : {"platt", "temperature"} or None, default=None
        Map the network's output to calibrated probabilities, fitted on the
        validation part by maximum likelihood: Platt scaling (slope and
        intercept on the logit) or temperature scaling (slope only). None keeps
        the network's sigmoid output.
    prevalence : float in (0, 1) or None, default=None
        Share of pneumonia in the population the model is used on, when it
        differs from the training data's: the calibrated probabilities are moved
        to it by Bayes' rule on the odds (needs ``calibration``), and an
        automatic threshold moves with them, so recall and specificity stay
        those chosen. Can be changed with ``set_params`` after fitting.
    input_check : float in (0, 1] or None, default=0.995
        Share of the validation images that the input check's feature test
        lets pass: ``fit`` notes where the training images' penultimate
        features lie, and :meth:`check_inputs` refuses images further away
        than this share of the validation images (see
        :mod:`pneumoclf.validity`). None, or fewer than 4 training images per
        ``dense_units``, fits no feature test; the pixel and DICOM tests remain.
    warm_start : bool, default=False
        When True, ``fit`` on a fitted classifier trains its network further
        (weights and optimiser state) for up to ``epochs`` more epochs on the
        data given, instead of starting afresh, as in scikit-learn. The network's
        architecture and augmentation stay those of the first fit; ``epochs``,
        ``batch_size``, ``learning_rate``, early stopping, ``class_weight``,
        ``threshold`` and ``calibration`` apply to the new run, and the threshold
        and calibration are chosen again on its validation part. ``history_``
        and ``n_epochs_`` run on from the earlier fits. See also
        :meth:`partial_fit`.
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
        Loss and AUC per epoch (``val_*`` on the validation part), over every
        fit that trained this network (``warm_start``, :meth:`partial_fit`);
        a ``val_*`` list holds NaN for epochs run without a validation part.
    image_shape_ : tuple of int
        ``(height, width, channels)`` of the training images.
    n_features_in_ : int
        ``X.shape[1]`` in ``fit``: the number of columns of a table, the
        height of images.
    threshold_ : float
        The threshold :meth:`predict` applies now: ``threshold`` when it is a
        number, else ``chosen_threshold_``. Always in step with ``threshold``,
        also after ``set_params(threshold=...)``.
    chosen_threshold_ : float or None
        The threshold chosen on the validation part in ``fit`` when
        ``threshold="auto"``, on the calibrated probabilities at the training
        prevalence; None when ``fit`` was given a number.
    calibration_ : tuple of 2 float or None
        ``(a, b)`` of the calibration ``sigmoid(a * logit(p) + b)``; None without
        calibration.
    training_prevalence_ : float
        Share of pneumonia where the probabilities were calibrated (the
        validation part, or the training images without one); 0.5 after
        :meth:`partial_fit`, which calibrates nothing.
    validation_report_ : dict or None
        What the validation part of the last ``fit`` showed at the threshold
        (the chosen one, or ``threshold``), on the calibrated probabilities:
        ``n_images``, ``n_pneumonia``, ``n_patients`` (None without
        ``groups``), ``threshold``, ``recall``, ``specificity`` and
        ``roc_auc``. None when there was no validation part, and after
        :meth:`partial_fit`. The model card reports it.
    input_reference_ : InputReference or None
        The input check's feature test (:mod:`pneumoclf.validity`); None
        when ``input_check`` is None and after :meth:`partial_fit`.
    population_reference_ : PopulationReference or None
        The validation images' own scores, labels and feature distances, which
        :func:`pneumoclf.site.check_site` compares new images with; after
        :func:`pneumoclf.site.adapt_to_site`, those of the local images. None
        without a validation part and after :meth:`partial_fit`.
    adaptations_ : tuple of dict
        One record per adaptation to a site (:func:`pneumoclf.site.adapt_to_site`),
        oldest first; empty after ``fit``.
    training_digests_ : ndarray of uint64 or None
        A 64-bit digest of the pixels of each image the network was trained on
        (validation part included), sorted: what :meth:`trained_on` compares
        images with, without keeping their paths or pixels. None in models saved
        before it.
    feature_names_in_ : ndarray of str
        Column names of ``X`` in ``fit``, when it had string column names.
    n_epochs_ : int
        Epochs actually run, over every fit that trained this network.

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

    _parameter_constraints: dict = _training.PARAMETER_CONSTRAINTS

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
        head="flatten",
        optimizer="adam",
        learning_rate=1e-3,
        label_smoothing=0.0,
        lr_schedule="constant",
        batch_size=64,
        epochs=100,
        early_stopping=True,
        validation_fraction=0.1,
        monitor="loss",
        patience=15,
        class_weight=None,
        rotation=0.03,
        zoom=0.1,
        shift=0.05,
        contrast=0.1,
        blur=0.0,
        threshold=0.5,
        target_recall=None,
        calibration=None,
        prevalence=None,
        input_check=0.995,
        warm_start=False,
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
        self.head = head
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.label_smoothing = label_smoothing
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.monitor = monitor
        self.patience = patience
        self.class_weight = class_weight
        self.rotation = rotation
        self.zoom = zoom
        self.shift = shift
        self.contrast = contrast
        self.blur = blur
        self.threshold = threshold
        self.target_recall = target_recall
        self.calibration = calibration
        self.prevalence = prevalence
        self.input_check = input_check
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags = ClassifierTags(multi_class=False, poor_score=True)
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        return tags

    @fit_context(prefer_skip_nested_validation=True)
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
            ``pipe.fit(paths, y, cnn__groups=groups)``. Without it, ``fit``
            warns when its images come straight from an
            :class:`~pneumoclf.ImageLoader` whose file names show that at
            least 5% of them are further images of the same patients
            (:func:`~pneumoclf.patient_id`).

        Returns
        -------
        self : PneumoniaCNNClassifier
            The fitted classifier.
        """
        settings = self._settings()
        continuing = self.warm_start and hasattr(self, "model_")
        if groups is None and settings.needs_validation:
            message = _training.shared_patients_message(paths_of(X))
            if message is not None:
                # The caller of fit, past scikit-learn's _fit_context wrapper.
                warnings.warn(message, UserWarning, stacklevel=3)
        X, y = validate_data(
            self,
            X,
            binary_target(y, type(self).__name__),
            reset=not continuing,
            allow_nd=True,
            dtype=np.float32,
        )
        X = self._training_images(X, settings, continuing)
        sample_weight, groups = _training.per_image(y, sample_weight, groups)
        seed = _training.draw_seed(self.random_state)
        if continuing:
            model, classes = self.model_, self.classes_
        else:
            model, classes = _training.new_network(settings, X, y, seed)
        run = dict(groups=groups, seed=seed, epochs=self.epochs, validate=True)
        return self._train(
            settings, model, classes, X, y, sample_weight, continuing, run
        )

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train the network for one pass over ``X``, building it on the first call.

        Each call is one epoch over the images given, with no validation part:
        no early stopping, calibration or threshold choice, so ``threshold``
        must be a number (tune it afterwards, for example with
        :class:`~sklearn.model_selection.TunedThresholdClassifierCV`) and
        ``calibration`` None. ``history_`` and ``n_epochs_`` grow by one epoch
        per call. This is what ``OptunaSearchCV(enable_pruning=True)`` calls.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images scaled to [0, 1]; later calls take the shape of the first.
        y : array-like of shape (n,)
            Labels, each one of ``classes``; one batch may hold one class only.
        classes : array-like of shape (2,), default=None
            Both labels. Needed on the first call unless ``y`` holds both;
            later calls may repeat it.
        sample_weight : array-like of shape (n,), default=None
            Weights of the images in the loss.

        Returns
        -------
        self : PneumoniaCNNClassifier
            The classifier, trained one epoch further.
        """
        settings = self._settings()
        _training.check_partial_fit_settings(settings)
        continuing = hasattr(self, "model_")
        y = column_or_1d(y, warn=True)
        classes = _training.partial_fit_classes(
            y, classes, self.classes_ if continuing else None
        )
        X, y = validate_data(
            self, X, y, reset=not continuing, allow_nd=True, dtype=np.float32
        )
        X = self._training_images(X, settings, continuing)
        sample_weight, _ = _training.per_image(y, sample_weight, None)
        seed = _training.draw_seed(self.random_state)
        if continuing:
            model = self.model_
            seed = None if seed is None else seed + self.n_epochs_
        else:
            model = _training.build_network(settings, X.shape[1:], seed)
        run = dict(groups=None, seed=seed, epochs=1, validate=False)
        return self._train(
            settings, model, classes, X, y, sample_weight, continuing, run
        )

    def _settings(self):
        return _training.Settings.from_params(self.get_params(deep=False))

    def _training_images(self, X, settings, continuing):
        fitted = (self.image_shape_, self.model_) if continuing else None
        return _training.training_images(X, settings, fitted, type(self).__name__)

    def _train(self, settings, model, classes, X, y, sample_weight, continuing, run):
        """Train ``model``, set the fitted attributes, warn what the run found."""
        network = _training.train(
            settings, model, classes, X, y, sample_weight=sample_weight, **run
        )
        earlier = (self.history_, self.n_epochs_) if continuing else None
        fitted = _training.fitted_attributes(network, X.shape[1:], earlier)
        fitted["training_digests_"] = _training.training_digests(
            X, getattr(self, "training_digests_", None) if continuing else None
        )
        for name, value in fitted.items():
            setattr(self, name, value)
        for message in network.warnings:
            # The caller of fit, past scikit-learn's _fit_context wrapper and this
            # method; a Warning instance keeps its own category.
            warnings.warn(message, UserWarning, stacklevel=4)
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
        paths = paths_of(X)
        X = self.as_image_batch(X)
        scores, features = _training.network_outputs(self.model_, X, self.batch_size)
        _training.check_scores(scores)
        reference = getattr(self, "input_reference_", None)
        results = _training.input_check_results(X, features, reference, paths)
        _training.warn_about_refused(results, paths, stacklevel=2)
        pneumonia = self._deployed(calibrated(scores, self.calibration_))
        return np.column_stack([1.0 - pneumonia, pneumonia])

    def check_inputs(self, X):
        """Whether each image may be labelled: ``"ok"``, or why it may not.

        The DICOM attributes, the pixels and the network's features are checked
        (:mod:`pneumoclf.validity`); :meth:`predict` warns about refused images.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images of the shape used in ``fit``; in a pipeline, the files.

        Returns
        -------
        ndarray of shape (n,), dtype object
            ``"ok"`` or the reason, per image.
        """
        paths = paths_of(X)
        X = self.as_image_batch(X)
        _, features = _training.network_outputs(self.model_, X, self.batch_size)
        reference = getattr(self, "input_reference_", None)
        return _training.input_check_results(X, features, reference, paths)

    def network_outputs(self, X):
        """The network's own pneumonia probability and penultimate features.

        Before calibration, prevalence and threshold: what
        :mod:`pneumoclf.site` recalibrates and compares populations with.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images of the shape used in ``fit``.

        Returns
        -------
        scores : ndarray of shape (n,), float32
            The network's sigmoid output.
        features : ndarray of shape (n, dense_units), float32
            What its hidden dense layer gives the output layer.
        """
        X = self.as_image_batch(X)
        return _training.network_outputs(self.model_, X, self.batch_size)

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
        return self.classes_[is_pneumonia(pneumonia, self.threshold_).astype(int)]

    def decision_threshold(self):
        """The threshold :meth:`predict` applies now, as a float: ``threshold_``."""
        return self.threshold_

    @property
    def threshold_(self):
        check_is_fitted(self)
        # set_params after fit bypasses fit's checks: threshold and prevalence
        # are checked again wherever a prediction uses them.
        validate_parameters(self)
        if self.threshold != "auto":
            return float(self.threshold)
        if self.chosen_threshold_ is None:
            raise NotFittedError(
                "threshold='auto' was set after fitting with a numeric threshold, so "
                "no threshold was chosen: refit, or set a number."
            )
        return float(self._deployed(self.chosen_threshold_))

    def _deployed(self, probabilities):
        """Calibrated probabilities moved to ``prevalence``, when it is set."""
        validate_parameters(self)
        check_prevalence(self.prevalence, self.calibration_)
        return with_prevalence(
            probabilities, trained=self.training_prevalence_, deployed=self.prevalence
        )

    def trained_on(self, X):
        """Whether each image is one the network was trained on, by its pixels.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images, as :meth:`predict_proba` takes them.

        Returns
        -------
        ndarray of bool of shape (n,)
            True for an image whose pixels equal those of a training image (a
            64-bit digest match: a chance match has odds of about one in 10**15
            per pair).

        Raises
        ------
        ValueError
            If the classifier keeps no digests (a model saved before them).
        """
        check_is_fitted(self)
        if getattr(self, "training_digests_", None) is None:
            raise ValueError(
                "This model keeps no digests of its training images (it was saved "
                "before they were kept): it cannot tell which images it saw."
            )
        digests = _training.image_digests(self.as_image_batch(X))
        return np.isin(digests, self.training_digests_)

    def get_fitted_state(self):
        """Every fitted attribute, by name: what a model file must keep.

        Returns
        -------
        dict
            ``model_`` (the Keras network) and the other attributes ``fit`` sets.
        """
        check_is_fitted(self)
        state = {
            name: getattr(self, name)
            for name in _training.FITTED_ATTRIBUTES
            if hasattr(self, name)
        }
        return {"model_": self.model_, **state}

    def set_fitted_state(self, state):
        """Restore what :meth:`get_fitted_state` gave, checking that it fits together.

        Parameters
        ----------
        state : dict
            ``model_`` and the fitted attributes, as ``get_fitted_state`` names them.

        Returns
        -------
        self : PneumoniaCNNClassifier
            The classifier, ready to predict; a ``ValueError`` names an
            attribute that is missing, unknown, or disagrees with the others.
        """
        state = dict(state)
        _training.check_fitted_state(state)
        for name, value in state.items():
            setattr(self, name, value)
        return self

    def new_network(self, image_shape):
        """An untrained network of this architecture, for what a model file holds.

        ``image_shape`` is the ``(height, width, channels)`` of the images.

        Returns
        -------
        keras.Model
            The compiled network the parameters describe.
        """
        _training.check_fitted_image_shape(image_shape)
        return _training.build_network(self._settings(), image_shape)

    def count_network_weights(self, image_shape):
        """How many weights :meth:`new_network` would create, without building it.

        ``image_shape`` is the ``(height, width, channels)`` of the images.

        Returns
        -------
        int
            The number of weights, trainable or not.
        """
        _training.check_fitted_image_shape(image_shape)
        return _training.count_network_weights(self._settings(), image_shape)

    def as_image_batch(self, X):
        """``X`` as the network takes it, checked against the fitted images.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, h, w) or (n, k)
            Images of the shape used in ``fit``.

        Returns
        -------
        ndarray of shape (n, h, w, c)
            float32 images, for ``model_`` or heat maps; a ``ValueError`` says
            how images of another shape differ from the fitted ones.
        """
        check_is_fitted(self)
        # Column names are compared before the conversion to an array drops them.
        check_feature_names(self, X, reset=False)
        X = check_array(X, allow_nd=True, dtype=np.float32, input_name="X")
        _training.check_image_shape(X.shape, self.image_shape_, type(self).__name__)
        check_n_features(self, X, reset=False)
        X = _training.image_batch(X)
        _training.warn_if_outside_unit_range(X)
        return X
