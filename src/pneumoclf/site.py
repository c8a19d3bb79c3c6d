"""At a new site: adapt on labelled local cases, notice a shifted population.

A threshold chosen on one hospital's patients does not hold at the next: the
ranking of images travels better than the probabilities. Three tools answer:

* :func:`adapt_to_site` recalibrates the probabilities and chooses the threshold
  on a few hundred labelled local X-rays, and estimates, by cross-fitting over the
  local patients, the recall and specificity the site should expect;
* :func:`check_site` compares a batch of unlabelled local images with the
  population the model was fitted for (its ``population_reference_``): it
  estimates their share of pneumonia and tests whether they are a mixture of the
  reference's normal and pneumonia images at all;
* :func:`pneumoclf.metrics.referral_mask` refers the images whose probability lies
  near the threshold, instead of labelling them.

Nothing here needs a GPU; the network is run once per image.
"""

import copy
import datetime
import hashlib
import warnings
from typing import NamedTuple

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._calibration import calibrated, fit_calibration, to_logits, with_prevalence
from .classifier import PneumoniaCNNClassifier
from .exceptions import SiteShiftWarning
from .metrics import wilson_interval
from .validity import PopulationReference

__all__ = [
    "MIN_BATCH",
    "MIN_NORMAL",
    "SiteCheck",
    "adapt_to_site",
    "adaptation_card",
    "check_site",
    "estimate_prevalence",
    "site_threshold",
]

#: Fewest normal local images :func:`adapt_to_site` calibrates and estimates on.
MIN_NORMAL = 10
#: Fewest images :func:`check_site` compares with the reference.
MIN_BATCH = 30
# Folds of the cross-fitted estimate, at most.
_N_SPLITS = 5
# Largest number of pneumonia cases the planning figure looks for.
_MAX_CASES_NEEDED = 100_000


def site_threshold(scores, min_recall):
    """The threshold that keeps ``min_recall`` of new pneumonia cases, from a few.

    With ``n`` pneumonia scores, the ``k``-th lowest, ``k = floor((n + 1) * (1 -
    min_recall))``, is a threshold that a new pneumonia case of the same
    population reaches with probability at least ``min_recall`` (a conformal
    bound, Vovk et al. 2005): the in-sample recall is a little higher than the
    target, so that the recall on new cases is not lower on average.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Probabilities of the pneumonia cases.
    min_recall : float in (0, 1)
        The recall new cases must reach.

    Returns
    -------
    float
        The threshold (pneumonia where a probability reaches it).

    Raises
    ------
    ValueError
        When ``n`` is too small for any threshold to promise ``min_recall``:
        fewer than ``1 / (1 - min_recall) - 1`` cases.

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf.site import site_threshold
    >>> scores = np.arange(1, 40) / 40  # 39 cases: the 4th lowest keeps 90%
    >>> site_threshold(scores, min_recall=0.9)
    0.1
    """
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    k = int(np.floor((len(scores) + 1) * (1 - min_recall) + 1e-9))
    if k < 1:
        needed = _pneumonia_cases_for_threshold(min_recall)
        raise ValueError(
            f"{len(scores)} pneumonia cases are too few to choose a threshold that "
            f"keeps a recall of {min_recall:g} on new cases: at least {needed} are "
            "needed."
        )
    return float(scores[k - 1])


def _pneumonia_cases_for_threshold(min_recall):
    return int(np.ceil(1 / (1 - min_recall) - 1 - 1e-9))


def adapt_to_site(
    model, X, y, *, groups=None, min_recall=0.95, confidence=0.95, random_state=0
):
    """The model recalibrated, and its threshold chosen, on labelled local X-rays.

    The network is kept. Platt scaling is fitted anew on the local images and the
    threshold is the :func:`site_threshold` of their pneumonia cases at
    ``min_recall``. What the site should expect is estimated by cross-fitting:
    the local patients are split in up to 5 folds, and each fold is judged at
    the threshold chosen on the others. The adapted model keeps the local
    images as its ``population_reference_``, for :func:`check_site`, and a
    record of the adaptation in ``adaptations_``.

    Parameters
    ----------
    model : PneumoniaCNNClassifier or Pipeline
        A fitted classifier, or a fitted pipeline ending in one (then ``X`` are
        what its first steps take, such as file paths). It is not changed.
    X : array-like
        The local images, or their files.
    y : array-like of shape (n,)
        Their labels, among the model's ``classes_``.
    groups : array-like of shape (n,), default=None
        Patient of each image; None counts each image as its own patient.
    min_recall : float in (0, 1), default=0.95
        The recall the threshold must keep on new local cases.
    confidence : float in (0, 1), default=0.95
        Level of the intervals of the expected figures.
    random_state : int, default=0
        Seeds the cross-fitting folds.

    Returns
    -------
    PneumoniaCNNClassifier or Pipeline
        A new model, of the same kind as ``model``, with ``threshold="auto"``,
        the local calibration and threshold, and ``adaptations_[-1]`` holding:
        ``date``, ``n_images``, ``n_pneumonia``, ``n_patients``, ``prevalence``,
        ``min_recall``, ``threshold``, ``calibration``, ``roc_auc``, the
        cross-fitted ``recall`` and ``specificity`` with their ``*_interval``,
        ``pneumonia_cases_needed`` (how many local pneumonia cases would bring
        the recall's lower bound to ``min_recall``; None when the estimate does
        not exceed it), ``previous_threshold``, ``previous_recall`` and
        ``previous_specificity`` (the model's own threshold on the local images)
        and ``network_sha256`` (digest of the network's weights).

    Raises
    ------
    ValueError
        When a label is not one of ``classes_``, or the local images are too few
        to say anything: fewer than :data:`MIN_NORMAL` normal images, fewer
        pneumonia cases than ``min_recall`` needs (19 at 0.95), or too few
        patients of a class to cross-fit.

    Warns
    -----
    SiteShiftWarning
        When the model's validation figures lie outside the local intervals at
        its own threshold: the site differs from where the model was fitted.
    """
    classifier = _final_classifier(model)
    pneumonia = _pneumonia_labels(y, classifier.classes_)
    groups = np.arange(len(pneumonia)) if groups is None else np.asarray(groups)
    if len(groups) != len(pneumonia):
        raise ValueError(
            f"groups has {len(groups)} entries for {len(pneumonia)} images."
        )
    _check_enough_cases(pneumonia, groups, min_recall)
    scores, distances = _scores_and_distances(model, classifier, X)
    calibration = fit_calibration(scores, pneumonia, "platt")
    local = calibrated(scores, calibration)
    threshold = site_threshold(local[pneumonia], min_recall)
    record = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "n_images": len(pneumonia),
        "n_pneumonia": int(pneumonia.sum()),
        "n_patients": len(np.unique(groups)),
        "prevalence": float(pneumonia.mean()),
        "min_recall": float(min_recall),
        "threshold": threshold,
        "calibration": [float(value) for value in calibration],
        "roc_auc": float(roc_auc_score(pneumonia, scores)),
        **_cross_fitted_figures(
            scores, pneumonia, groups, min_recall, confidence, random_state
        ),
        **_previous_figures(classifier, scores, pneumonia),
        "network_sha256": _network_digest(classifier),
    }
    _warn_if_site_differs(classifier, record, pneumonia, confidence)
    adapted = _adapted_classifier(
        classifier,
        calibration=calibration,
        prevalence=record["prevalence"],
        threshold=threshold,
        reference=PopulationReference(scores, pneumonia, distances),
        record=record,
    )
    if isinstance(model, Pipeline):
        return Pipeline(
            [*copy.deepcopy(model.steps[:-1]), (model.steps[-1][0], adapted)]
        )
    return adapted


def _final_classifier(model):
    classifier = model[-1] if isinstance(model, Pipeline) else model
    if not isinstance(classifier, PneumoniaCNNClassifier):
        raise TypeError(
            "model must be a PneumoniaCNNClassifier or a Pipeline ending in one, "
            f"got {type(classifier).__name__}."
        )
    check_is_fitted(classifier)
    return classifier


def _pneumonia_labels(y, classes):
    y = np.asarray(y).reshape(-1)
    unknown = sorted({str(label) for label in np.unique(y)} - set(map(str, classes)))
    if unknown:
        raise ValueError(
            f"y holds labels {unknown} that the model does not know: its classes "
            f"are {classes.tolist()}."
        )
    return y.astype(str) == str(classes[1])


def _check_enough_cases(pneumonia, groups, min_recall):
    """Refuse local images too few to calibrate, choose and estimate on."""
    n_pneumonia, n_normal = int(pneumonia.sum()), int((~pneumonia).sum())
    needed = _pneumonia_cases_for_threshold(min_recall)
    problems = []
    if n_pneumonia < needed:
        problems.append(
            f"{n_pneumonia} pneumonia cases (a threshold that keeps a recall of "
            f"{min_recall:g} needs at least {needed})"
        )
    if n_normal < MIN_NORMAL:
        problems.append(f"{n_normal} normal images (at least {MIN_NORMAL} needed)")
    for name, mask in (("pneumonia", pneumonia), ("normal", ~pneumonia)):
        n_patients = len(np.unique(groups[mask]))
        if mask.any() and n_patients < 2:
            problems.append(f"{n_patients} patient with {name} images (2 needed)")
    if problems:
        raise ValueError(
            "Too few local cases to adapt the model to: "
            + "; ".join(problems)
            + ". Label more local X-rays of both classes."
        )


def _scores_and_distances(model, classifier, X):
    """The network's own scores and, with a feature test, the feature distances."""
    images = model[:-1].transform(X) if isinstance(model, Pipeline) else X
    scores, features = classifier.network_outputs(images)
    reference = getattr(classifier, "input_reference_", None)
    distances = None
    if reference is not None:
        distances = reference.distances(features).astype(np.float32)
    return scores.astype(np.float32), distances


def _cross_fitted_figures(scores, pneumonia, groups, min_recall, confidence, seed):
    """Recall and specificity of thresholds chosen on other local patients."""
    n_splits = min(
        _N_SPLITS,
        len(np.unique(groups[pneumonia])),
        len(np.unique(groups[~pneumonia])),
    )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    called = np.zeros(len(scores), dtype=bool)
    for train, test in folds.split(scores, pneumonia, groups):
        train_pneumonia = scores[train][pneumonia[train]]
        try:
            threshold = site_threshold(train_pneumonia, min_recall)
        except ValueError:  # a fold too small for the target: its lowest case
            threshold = float(train_pneumonia.min())
        called[test] = scores[test] >= threshold
    tp, n_pneumonia = int(called[pneumonia].sum()), int(pneumonia.sum())
    tn, n_normal = int((~called[~pneumonia]).sum()), int((~pneumonia).sum())
    recall = tp / n_pneumonia
    return {
        "recall": recall,
        "recall_interval": wilson_interval(tp, n_pneumonia, confidence),
        "specificity": tn / n_normal,
        "specificity_interval": wilson_interval(tn, n_normal, confidence),
        "confidence": float(confidence),
        "pneumonia_cases_needed": _cases_needed(recall, min_recall, confidence),
    }


def _cases_needed(recall, min_recall, confidence):
    """Pneumonia cases at which a recall of ``recall`` has its lower bound at target."""
    if recall <= min_recall:
        return None
    n = 1
    while n <= _MAX_CASES_NEEDED:
        if wilson_interval(round(recall * n), n, confidence)[0] >= min_recall:
            return n
        n = max(n + 1, int(n * 1.05))
    return None


def _previous_figures(classifier, scores, pneumonia):
    """Recall and specificity on the local images at the model's own threshold."""
    probabilities = with_prevalence(
        calibrated(scores, classifier.calibration_),
        trained=classifier.training_prevalence_,
        deployed=classifier.prevalence,
    )
    called = probabilities >= classifier.threshold_
    return {
        "previous_threshold": float(classifier.threshold_),
        "previous_recall": float(called[pneumonia].mean()),
        "previous_specificity": float((~called[~pneumonia]).mean()),
    }


def _network_digest(classifier):
    digest = hashlib.sha256()
    for weights in classifier.model_.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def _warn_if_site_differs(classifier, record, pneumonia, confidence):
    validation = classifier.validation_report_
    if validation is None:
        return
    disagree = []
    for name, n in (("recall", pneumonia.sum()), ("specificity", (~pneumonia).sum())):
        local = record[f"previous_{name}"]
        low, high = wilson_interval(round(local * n), n, confidence)
        if not low <= validation[name] <= high:
            disagree.append(
                f"{name} {local:.1%} [{low:.1%}, {high:.1%}] here, "
                f"{validation[name]:.1%} on its validation patients"
            )
    if disagree:
        warnings.warn(
            f"At the model's own threshold ({record['previous_threshold']:.4f}), the "
            f"local images disagree with its validation figures: "
            f"{'; '.join(disagree)}. This site differs from where the model was "
            "fitted; the adapted threshold is chosen on the local images.",
            SiteShiftWarning,
            stacklevel=3,
        )


def _adapted_classifier(
    classifier, *, calibration, prevalence, threshold, reference, record
):
    """A copy of ``classifier`` with a copy of its network and the site's choices."""
    adapted = copy.copy(classifier)
    adapted.set_params(threshold="auto", prevalence=None)
    network = classifier.new_network(classifier.image_shape_)
    network.set_weights(classifier.model_.get_weights())
    state = classifier.get_fitted_state()
    state.update(
        model_=network,
        calibration_=tuple(float(value) for value in calibration),
        training_prevalence_=float(prevalence),
        chosen_threshold_=float(threshold),
        population_reference_=reference,
        adaptations_=(*getattr(classifier, "adaptations_", ()), record),
    )
    return adapted.set_fitted_state(state)


def adaptation_card(record, model_card=None):
    """A model card with a section on one adaptation to a site.

    Parameters
    ----------
    record : dict
        One of a model's ``adaptations_``.
    model_card : str or None, default=None
        The card of the model that was adapted; None starts an empty one.

    Returns
    -------
    str
        Markdown: ``model_card`` followed by "Adaptation to a site".
    """
    low, high = record["recall_interval"]
    spec_low, spec_high = record["specificity_interval"]
    level = f"{record['confidence']:.0%} CI"
    needed = record["pneumonia_cases_needed"]
    lines = [
        f"## Adaptation to a site ({record['date']})",
        "",
        "Recalibrated (Platt scaling) and given a new threshold on labelled local "
        "X-rays; the network is the one above (weights SHA-256 "
        f"`{record['network_sha256']}`).",
        "",
        "| | |",
        "|---|---|",
        f"| local images | {record['n_images']} of {record['n_patients']} patients, "
        f"{record['prevalence']:.1%} pneumonia |",
        f"| recall target | {record['min_recall']:g} |",
        f"| threshold | {record['previous_threshold']:.4f} before, "
        f"{record['threshold']:.4f} now |",
        f"| at the previous threshold | recall {record['previous_recall']:.1%}, "
        f"specificity {record['previous_specificity']:.1%} |",
        f"| expected recall (cross-fitted) | {record['recall']:.1%} ({level} "
        f"{low:.1%} to {high:.1%}) |",
        f"| expected specificity (cross-fitted) | {record['specificity']:.1%} "
        f"({level} {spec_low:.1%} to {spec_high:.1%}) |",
        f"| ROC AUC on the local images | {record['roc_auc']:.4f} |",
        "| pneumonia cases for the recall's lower bound to reach the target | "
        f"{'not reachable at this recall' if needed is None else needed} |",
    ]
    section = "\n".join(lines) + "\n"
    return section if not model_card else f"{model_card.rstrip()}\n\n{section}"


class SiteCheck(NamedTuple):
    """What :func:`check_site` found in a batch of unlabelled images.

    Attributes
    ----------
    shifted : bool
        Whether the batch differs from the reference population (``p_value``
        below ``alpha``).
    p_value : float
        Of the test that the batch is a mixture of the reference's normal and
        pneumonia images, in some proportion.
    statistic : float
        Its statistic: the largest Kolmogorov-Smirnov distance, times the
        square root of the batch size, of the scores (and the feature
        distances) from the best such mixture.
    estimated_prevalence : float
        Estimated share of pneumonia in the batch.
    reference_prevalence : float
        Share of pneumonia in the reference.
    n_images : int
        Images in the batch.
    message : str
        The finding, in plain words.
    """

    shifted: bool
    p_value: float
    statistic: float
    estimated_prevalence: float
    reference_prevalence: float
    n_images: int
    message: str


def check_site(model, X, *, alpha=0.01, n_resamples=500, random_state=0):
    """Whether a batch of unlabelled images differs from the model's population.

    The batch's scores (and, with the input check, its feature distances) are
    compared with the model's ``population_reference_`` (its validation
    patients, or the local images of its last adaptation). Its share of
    pneumonia is estimated by a two-component mixture of the calibrated logits
    (:func:`estimate_prevalence`), and the test asks whether the batch looks
    like the reference's normal and pneumonia images mixed in that proportion;
    its p-value comes from a bootstrap that redraws both the reference and the
    batch. A change of prevalence alone is not a shift; images that the model
    sees differently are.

    Parameters
    ----------
    model : PneumoniaCNNClassifier or Pipeline
        A fitted classifier with a ``population_reference_``, or a pipeline
        ending in one.
    X : array-like
        At least :data:`MIN_BATCH` images, or their files.
    alpha : float in (0, 1), default=0.01
        The p-value below which the batch is called shifted: about one batch
        in a hundred of the reference population is, by chance.
    n_resamples : int, default=500
        Bootstrap resamples; the smallest p-value is ``1 / (n_resamples + 1)``.
    random_state : int, default=0
        Seeds the bootstrap.

    Returns
    -------
    SiteCheck

    Raises
    ------
    ValueError
        If the batch is smaller than :data:`MIN_BATCH`, or the model keeps no
        reference (fitted without a validation part, or saved before 0.2).
    """
    classifier = _final_classifier(model)
    reference = getattr(classifier, "population_reference_", None)
    if reference is None:
        raise ValueError(
            "The model keeps no population reference to compare with: it was fitted "
            "without a validation part, or saved by an older pneumoclf. Refit it, "
            "or adapt it to labelled local images (adapt_to_site)."
        )
    scores, distances = _scores_and_distances(model, classifier, X)
    if len(scores) < MIN_BATCH:
        raise ValueError(
            f"{len(scores)} images are too few to compare a population: at least "
            f"{MIN_BATCH} are needed."
        )
    if reference.distances is None:
        distances = None
    batch = _Sample(scores, distances)
    ref = _Sample(reference.scores, reference.distances)
    logits = _logit_function(classifier)
    prevalence = estimate_prevalence(
        logits(batch.scores), logits(ref.scores), reference.pneumonia
    )
    observed = _mixture_statistic(batch, ref, reference.pneumonia, prevalence)
    null = _bootstrap_statistics(
        ref, reference.pneumonia, prevalence, len(scores), logits, n_resamples,
        random_state,
    )  # fmt: skip
    p_value = float((1 + np.sum(null >= observed)) / (1 + n_resamples))
    shifted = p_value < alpha
    reference_prevalence = float(reference.pneumonia.mean())
    return SiteCheck(
        shifted=bool(shifted),
        p_value=p_value,
        statistic=float(observed),
        estimated_prevalence=float(prevalence),
        reference_prevalence=reference_prevalence,
        n_images=len(scores),
        message=_check_message(
            shifted, p_value, len(scores), prevalence, reference_prevalence
        ),
    )


class _Sample(NamedTuple):
    scores: np.ndarray
    distances: np.ndarray | None

    def take(self, rows):
        return _Sample(
            self.scores[rows], None if self.distances is None else self.distances[rows]
        )


def _logit_function(classifier):
    return lambda scores: to_logits(calibrated(scores, classifier.calibration_))


def estimate_prevalence(logits, reference_logits, reference_pneumonia):
    """Share of pneumonia in a batch, from its calibrated logits.

    Fits a mixture of two normal distributions to ``logits`` by expectation
    maximisation, started from the reference's two classes, and returns the
    weight of the upper one. Unlike a correction of the reference's prevalence
    (Saerens et al. 2002), it does not assume that each class scores at the new
    site as it did in the reference: only that the two classes stay apart.

    Parameters
    ----------
    logits : array-like of shape (n,)
        Logits of the batch's calibrated probabilities.
    reference_logits : array-like of shape (m,)
        Those of the reference images.
    reference_pneumonia : array-like of shape (m,), bool
        Which reference images show pneumonia.

    Returns
    -------
    float
        The estimated share, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from pneumoclf.site import estimate_prevalence
    >>> rng = np.random.default_rng(0)
    >>> reference = np.r_[rng.normal(-4, 1, 100), rng.normal(4, 1, 100)]
    >>> batch = np.r_[rng.normal(-3, 1, 30), rng.normal(5, 1, 70)]
    >>> round(estimate_prevalence(batch, reference, np.arange(200) >= 100), 2)
    0.7
    """
    z = np.asarray(logits, dtype=np.float64)
    reference_logits = np.asarray(reference_logits, dtype=np.float64)
    reference_pneumonia = np.asarray(reference_pneumonia, dtype=bool)
    means = np.array(
        [reference_logits[~reference_pneumonia].mean(),
         reference_logits[reference_pneumonia].mean()]
    )  # fmt: skip
    spread = max(float(np.var(reference_logits)), 1e-6)
    variances = np.array(
        [np.var(reference_logits[~reference_pneumonia]),
         np.var(reference_logits[reference_pneumonia])]
    ).clip(1e-3 * spread)  # fmt: skip
    weight = float(reference_pneumonia.mean())
    for _ in range(200):
        upper = _responsibilities(z, means, variances, weight)
        new_weight = float(upper.mean())
        shares = np.stack([1 - upper, upper])
        totals = shares.sum(axis=1).clip(1e-12)
        means = (shares @ z) / totals
        variances = ((shares * (z - means[:, None]) ** 2).sum(axis=1) / totals).clip(
            1e-3 * spread
        )
        converged = abs(new_weight - weight) < 1e-6
        weight = new_weight
        if converged:
            break
    return weight if means[1] >= means[0] else 1 - weight


def _responsibilities(z, means, variances, weight):
    """Posterior probability of the upper component for each of ``z``."""
    log_density = -0.5 * ((z[None, :] - means[:, None]) ** 2 / variances[:, None])
    log_density -= 0.5 * np.log(variances)[:, None]
    log_density[0] += np.log(max(1 - weight, 1e-12))
    log_density[1] += np.log(max(weight, 1e-12))
    return np.exp(log_density[1] - np.logaddexp(log_density[0], log_density[1]))


def _mixture_statistic(batch, reference, pneumonia, prevalence):
    """sqrt(n) times the largest KS distance from the reference's mixture."""
    columns = [(batch.scores, reference.scores)]
    if batch.distances is not None:
        columns.append((batch.distances, reference.distances))
    largest = 0.0
    for values, reference_values in columns:
        at = np.concatenate([values, reference_values])
        mixture = prevalence * _ecdf(reference_values[pneumonia], at) + (
            1 - prevalence
        ) * _ecdf(reference_values[~pneumonia], at)
        largest = max(largest, float(np.max(np.abs(_ecdf(values, at) - mixture))))
    return largest * np.sqrt(len(batch.scores))


def _ecdf(sample, at):
    return np.searchsorted(np.sort(sample), at, side="right") / len(sample)


def _bootstrap_statistics(
    reference, pneumonia, prevalence, n, logits, n_resamples, seed
):
    """The statistic where the batch is a mixture of the reference's images."""
    rng = np.random.default_rng(seed)
    pneumonia_rows, normal_rows = np.flatnonzero(pneumonia), np.flatnonzero(~pneumonia)
    statistics = np.empty(n_resamples)
    for index in range(n_resamples):
        redrawn = rng.integers(0, len(pneumonia), len(pneumonia))
        n_pneumonia = rng.binomial(n, prevalence)
        drawn = np.concatenate(
            [rng.choice(pneumonia_rows, n_pneumonia),
             rng.choice(normal_rows, n - n_pneumonia)]
        )  # fmt: skip
        ref, batch = reference.take(redrawn), reference.take(drawn)
        labels = pneumonia[redrawn]
        if labels.all() or not labels.any():
            statistics[index] = 0.0
            continue
        estimate = estimate_prevalence(logits(batch.scores), logits(ref.scores), labels)
        statistics[index] = _mixture_statistic(batch, ref, labels, estimate)
    return statistics


def _check_message(shifted, p_value, n_images, prevalence, reference_prevalence):
    shares = (
        f"estimated share of pneumonia {prevalence:.0%} (reference: "
        f"{reference_prevalence:.0%})"
    )
    if shifted:
        return (
            f"These {n_images} images differ from the population the model was "
            f"fitted for (p = {p_value:.3g}): the model sees them unlike any mix of "
            f"its reference's normal and pneumonia images; {shares}. Its threshold "
            "may not hold here: adapt it on labelled local X-rays (pneumoclf adapt)."
        )
    return (
        f"No sign that these {n_images} images differ from the population the model "
        f"was fitted for (p = {p_value:.3g}); {shares}. A batch this size shows "
        "only clear shifts."
    )
