"""One training run: Keras ``fit`` on the package's input pipeline, then the choices.

A first fit and a warm start take this one route; they differ only in where the
network comes from (:func:`~.adapter.new_network`, or the fitted one).
"""

from typing import NamedTuple

import keras
import numpy as np
from sklearn.utils.class_weight import compute_sample_weight

from .._calibration import check_prevalence
from ..exceptions import UntrainedNetworkWarning
from ..validity import PopulationReference, fit_input_reference
from .continuing import check_labels_among, joined_history
from .inference import check_scores, network_outputs, network_scores
from .pipeline import as_tensors, batches, without_retracing_notices
from .validation import calibrate_and_choose_threshold, validation_split

#: Training images per penultimate feature that the input check's feature test
#: needs: with fewer (the bundled sample's 160 images and 128 features), its
#: covariance is too rough, and it refused up to a tenth of real X-rays.
MIN_IMAGES_PER_FEATURE = 4

# Training images a trained network is checked on, and the least spread of their
# scores that shows it tells images apart.
_COLLAPSE_SAMPLE = 256
_COLLAPSE_SPREAD = 1e-6


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
    input_reference: tuple | None  # validity.InputReference
    population_reference: tuple | None  # validity.PopulationReference
    warnings: tuple  # messages or warnings the public class warns with, at its caller


def train(
    settings, model, classes, X, y, *, sample_weight, groups, seed, epochs, validate
):
    """Train ``model`` for up to ``epochs`` passes, then calibrate and choose.

    Parameters
    ----------
    settings : Settings
        The classifier's parameters.
    model : keras.Model
        The compiled network: new, or fitted and trained further (its weights
        and optimiser state carry on, at ``settings.learning_rate``).
    classes : ndarray of shape (2,)
        The labels, sorted; ``y`` holds some of them.
    X, y : ndarray
        Validated images ``(n, h, w, c)`` and labels.
    sample_weight, groups : ndarray of shape (n,) or None
        Weights in the loss, and the patient of each image.
    seed : int or None
        Seed of the shuffling and of the validation split.
    epochs : int
        Most passes over the images.
    validate : bool
        Whether to hold out the validation part the settings need (``fit``), or
        to train on every image and choose nothing (``partial_fit``).

    Returns
    -------
    TrainedNetwork
        The history and epochs of this run alone.
    """
    check_prevalence(settings.prevalence, settings.calibration)
    check_labels_among(y, classes)
    weights = _class_and_sample_weights(settings.class_weight, y, sample_weight)
    if weights is not None:
        # Images of weight zero teach nothing; dropping them keeps groups aligned.
        kept = weights != 0
        if not kept.any():
            raise ValueError(
                "Every sample_weight is zero: there is nothing to train on."
            )
        X, y, weights = X[kept], y[kept], weights[kept]
        groups = None if groups is None else groups[kept]
    encoded = (y == classes[1]).astype(np.float32).reshape(-1, 1)
    model.optimizer.learning_rate.assign(settings.learning_rate)
    messages = []
    train_rows, validation = np.arange(len(y)), None
    if validate and settings.needs_validation:
        train_rows, validation = validation_split(
            settings, encoded, groups, seed, messages
        )
    history = _fit(
        settings, model, X, encoded, weights, train_rows, validation, seed, epochs
    )
    if validate:
        calibration, threshold, prevalence, report = calibrate_and_choose_threshold(
            settings, model, X, encoded, validation, weights, groups, messages
        )
    else:
        calibration, threshold, prevalence, report = None, None, 0.5, None
    messages += _check_trained(model, X, settings.batch_size)
    reference, population = None, None
    if validate:
        reference, population = _references(
            settings, model, X, encoded, train_rows, validation
        )
    return TrainedNetwork(
        model=model,
        classes=classes,
        history={name: list(values) for name, values in history.history.items()},
        n_epochs=len(history.epoch),
        chosen_threshold=threshold,
        calibration=calibration,
        prevalence=prevalence,
        validation_report=report,
        input_reference=reference,
        population_reference=population,
        warnings=tuple(messages),
    )


def _references(settings, model, X, y, train_rows, validation):
    """The input check's reference, and the validation images' population reference.

    The input check's threshold lets ``settings.input_check`` of the validation
    images pass, or of the training images when there is no validation part.
    Either is None when there is too little to fit it on.
    """
    feature_test = (
        settings.input_check is not None
        and len(train_rows) >= MIN_IMAGES_PER_FEATURE * settings.dense_units
    )
    reference = None
    if feature_test:
        scores, features = network_outputs(model, X, settings.batch_size)
        held_out = train_rows if validation is None else validation
        reference = fit_input_reference(
            features[train_rows], features[held_out], keep=settings.input_check
        )
    if validation is None:
        return reference, None
    if reference is None:
        scores = np.empty(len(X), dtype=np.float32)
        scores[validation] = network_scores(model, X[validation], settings.batch_size)
        distances = None
    else:
        distances = reference.distances(features[validation]).astype(np.float32)
    population = PopulationReference(
        scores=scores[validation],
        pneumonia=y[validation].reshape(-1) == 1,
        distances=distances,
    )
    return reference, population


def _fit(settings, model, X, y, weights, train_rows, validation, seed, epochs):
    """Keras ``fit`` over the training rows, monitored on the validation rows."""
    arrays = as_tensors(X, y, *(() if weights is None else (weights,)))
    validation_data = None
    if validation is not None:
        validation_data = batches(arrays[:2], validation, settings.batch_size)
    with without_retracing_notices():
        return model.fit(
            batches(arrays, train_rows, settings.batch_size, shuffle=True, seed=seed),
            validation_data=validation_data,
            epochs=epochs,
            shuffle=False,  # the pipeline shuffles, seeded
            callbacks=_callbacks(settings, monitored=validation is not None),
            verbose=settings.verbose,
        )


def _class_and_sample_weights(class_weight, y, sample_weight):
    """Per-image float32 weights: class weight times sample weight, or None."""
    if class_weight is None and sample_weight is None:
        return None
    weights = np.ones(len(y)) if sample_weight is None else sample_weight.copy()
    if class_weight is not None:
        weights *= compute_sample_weight(class_weight, y)
    return weights.astype(np.float32)


def _callbacks(settings, *, monitored):
    callbacks = list(settings.callbacks)
    watched = {"monitor": f"val_{settings.monitor}"}
    watched["mode"] = "min" if settings.monitor == "loss" else "max"
    if monitored and settings.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                **watched,
                patience=settings.patience,
                restore_best_weights=True,
            )
        )
    if monitored and settings.lr_schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                **watched,
                factor=0.2,
                patience=max(1, settings.patience // 3),
            )
        )
    return callbacks


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


def fitted_attributes(network, image_shape, earlier):
    """The classifier's fitted attributes after a run, by name.

    ``earlier`` is ``(history_, n_epochs_)`` of the fits that trained the network
    before, or None for a new network.
    """
    history, n_epochs = network.history, network.n_epochs
    if earlier is not None:
        history = joined_history(*earlier, network.history, network.n_epochs)
        n_epochs += earlier[1]
    return {
        "history_": history,
        "n_epochs_": n_epochs,
        "model_": network.model,
        "classes_": network.classes,
        "image_shape_": image_shape,
        "chosen_threshold_": network.chosen_threshold,
        "calibration_": network.calibration,
        "training_prevalence_": network.prevalence,
        "validation_report_": network.validation_report,
        "input_reference_": network.input_reference,
        "population_reference_": network.population_reference,
        "adaptations_": (),
    }
