"""Figures of an evaluation: ROC, confusion, scores, calibration, training, errors.

Each function draws on a matplotlib ``Axes`` (a new figure when none is given) and
returns scikit-learn's display object where one fits, so that users, the docs and
``pneumoclf evaluate --report-dir`` draw the same figures. The figures are made
without :mod:`matplotlib.pyplot`, so no window or GUI backend is involved.

Needs the ``plot`` extra: ``pip install "pneumoclf[plot]"``.
"""

from itertools import zip_longest
from pathlib import Path

import numpy as np

from ._utils import atomic_open, is_pneumonia

__all__ = [
    "FIGURE_NAMES",
    "kept_epoch",
    "plot_calibration_curve",
    "plot_confusion_matrix",
    "plot_roc_curve",
    "plot_score_distributions",
    "plot_training_curves",
    "plot_worst_errors",
    "save_evaluation_figures",
    "worst_errors",
]

#: Files :func:`save_evaluation_figures` writes, in that order; the last two only
#: with a training history and with the image files.
FIGURE_NAMES = (
    "roc_curve.png",
    "confusion_matrix.png",
    "score_distributions.png",
    "calibration_curve.png",
    "training_curves.png",
    "worst_errors.png",
)

# Side of the thumbnails of plot_worst_errors, in pixels, and the most characters
# of a file name shown above one.
_THUMBNAIL_SIZE = 160
_TITLE_CHARACTERS = 28
_THUMBNAIL_ROW_INCHES = 2.6
# Inches between a figure's labels and its edge.
_EDGE_PAD = 0.12

_CLASS_NAMES = ["NORMAL", "PNEUMONIA"]


def require_matplotlib(feature="This figure"):
    """Fail early, naming the extra to install, when matplotlib is missing.

    Parameters
    ----------
    feature : str, default="This figure"
        What needs matplotlib, for the message.

    Raises
    ------
    ImportError
        If matplotlib cannot be imported.
    """
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError(
            f"{feature} is drawn with matplotlib, which is not installed: "
            'pip install "pneumoclf[plot]"'
        ) from None


def plot_roc_curve(
    y_true,
    y_score,
    threshold,
    *,
    groups=None,
    confidence=0.95,
    n_resamples=200,
    random_state=0,
    ax=None,
):
    """ROC curve with its confidence band and the operating point at ``threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0 (NORMAL) or 1 (PNEUMONIA).
    y_score : array-like of shape (n,)
        Pneumonia probabilities.
    threshold : float
        The decision threshold whose recall and false positive rate are marked.
    groups : array-like of shape (n,), default=None
        The patient of each image: the band then resamples patients, not
        images, as :func:`~pneumoclf.metrics.clinical_report` does.
    confidence : float in (0, 1) or None, default=0.95
        Level of the pointwise band of the true positive rate; None draws none.
    n_resamples : int, default=200
        Bootstrap resamples of the band.
    random_state : int, default=0
        Seed of the resampling.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    sklearn.metrics.RocCurveDisplay

    Examples
    --------
    >>> from pneumoclf.plotting import plot_roc_curve
    >>> display = plot_roc_curve([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    >>> round(float(display.roc_auc), 2)
    0.75
    """
    from sklearn.metrics import RocCurveDisplay

    y_true, predicted = _labels_and_decisions(y_true, y_score, threshold)
    display = RocCurveDisplay.from_predictions(
        y_true, y_score, ax=_axes(ax), name="model", plot_chance_level=True
    )
    if confidence is not None:
        low, high = _roc_band(
            y_true, np.asarray(y_score), groups, confidence, n_resamples, random_state
        )
        display.ax_.fill_between(
            _FPR_GRID,
            low,
            high,
            alpha=0.25,
            step="post",
            label=f"{confidence:.0%} band",
        )
    display.ax_.plot(
        predicted[y_true == 0].mean(),
        predicted[y_true == 1].mean(),
        "o",
        color="black",
        label=f"threshold {threshold:.3f}",
    )
    display.ax_.set(
        xlabel="False positive rate (1 - specificity)",
        ylabel="True positive rate (recall)",
        title=(
            f"ROC curve, {int((y_true == 1).sum())} pneumonia and "
            f"{int((y_true == 0).sum())} normal images"
        ),
    )
    display.ax_.legend(loc="lower right")
    return display


# False positive rates at which the ROC band is drawn.
_FPR_GRID = np.linspace(0, 1, 201)


def _roc_band(y_true, y_score, groups, confidence, n_resamples, random_state):
    """Pointwise bootstrap band of the true positive rate on ``_FPR_GRID``.

    Each resample draws patients (or images, without ``groups``) with
    replacement; resamples missing a class are skipped.
    """
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(random_state)
    units = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    unique_units, unit_of = np.unique(units, return_inverse=True)
    members = [np.flatnonzero(unit_of == unit) for unit in range(len(unique_units))]
    curves = []
    for _ in range(n_resamples):
        drawn = rng.integers(len(unique_units), size=len(unique_units))
        rows = np.concatenate([members[unit] for unit in drawn])
        if len(np.unique(y_true[rows])) < 2:
            continue
        fpr, tpr, _ = roc_curve(y_true[rows], y_score[rows])
        # The true positive rate reached at each false positive rate (a step).
        curves.append(tpr[np.searchsorted(fpr, _FPR_GRID, side="right") - 1])
    tail = 100 * (1 - confidence) / 2
    return np.percentile(curves, [tail, 100 - tail], axis=0)


def plot_confusion_matrix(y_true, y_score, threshold, *, ax=None):
    """Confusion matrix of the decisions at ``threshold``, counts and row shares.

    Each cell shows its count and its share of the row, the true class: the
    diagonal then reads as specificity (NORMAL) and recall (PNEUMONIA).

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0 (NORMAL) or 1 (PNEUMONIA).
    y_score : array-like of shape (n,)
        Pneumonia probabilities.
    threshold : float
        The decision threshold.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    sklearn.metrics.ConfusionMatrixDisplay
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    y_true, predicted = _labels_and_decisions(y_true, y_score, threshold)
    display = ConfusionMatrixDisplay.from_predictions(
        y_true,
        predicted.astype(int),
        labels=[0, 1],
        display_labels=_CLASS_NAMES,
        ax=_axes(ax),
        colorbar=False,
    )
    counts = display.confusion_matrix
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    for (i, j), text in np.ndenumerate(display.text_):
        text.set_text(f"{counts[i, j]}\n{shares[i, j]:.1%}")
    display.ax_.set_title(f"Threshold {threshold:.3f} (share of each true class)")
    return display


def plot_score_distributions(y_true, y_score, threshold, *, bins=20, ax=None):
    """Histograms of the pneumonia probability of each true class, and the threshold.

    Images of each class right of the threshold are called pneumonia: the
    NORMAL bars there are the false positives, the PNEUMONIA bars left of it
    the false negatives.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0 (NORMAL) or 1 (PNEUMONIA).
    y_score : array-like of shape (n,)
        Pneumonia probabilities.
    threshold : float
        The decision threshold, drawn as a vertical line.
    bins : int, default=20
        Bins of equal width over [0, 1].
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from pneumoclf.plotting import plot_score_distributions
    >>> ax = plot_score_distributions([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5)
    >>> ax.get_legend_handles_labels()[1]
    ['NORMAL (2)', 'PNEUMONIA (2)', 'threshold 0.500']
    """
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    ax = _axes(ax)
    edges = np.linspace(0, 1, bins + 1)
    for label, name in enumerate(_CLASS_NAMES):
        scores = y_score[y_true == label]
        ax.hist(scores, bins=edges, alpha=0.6, label=f"{name} ({len(scores)})")
    ax.axvline(
        threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}"
    )
    ax.set(
        xlim=(0, 1),
        xlabel="Probability of pneumonia",
        ylabel="Images",
        title="Scores of each true class",
    )
    ax.legend()
    return ax


def plot_calibration_curve(y_true, y_score, *, n_bins=10, ax=None):
    """Reliability curve: the share of pneumonia among images of each probability.

    A calibrated model lies on the diagonal: of the images it gives 0.8, eight
    in ten have pneumonia. The bins hold equal numbers of images, so that
    each point rests on as many images as the others.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0 (NORMAL) or 1 (PNEUMONIA).
    y_score : array-like of shape (n,)
        Pneumonia probabilities.
    n_bins : int, default=10
        Bins of equal count (scikit-learn's ``strategy="quantile"``).
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    sklearn.calibration.CalibrationDisplay

    Examples
    --------
    >>> from pneumoclf.plotting import plot_calibration_curve
    >>> display = plot_calibration_curve([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_bins=2)
    >>> display.prob_true.tolist(), display.prob_pred.round(2).tolist()
    ([0.0, 1.0], [0.15, 0.85])
    """
    from sklearn.calibration import CalibrationDisplay

    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    display = CalibrationDisplay.from_predictions(
        y_true, y_score, n_bins=n_bins, strategy="quantile", name="model", ax=_axes(ax)
    )
    display.ax_.set(
        xlabel="Mean predicted probability of pneumonia",
        ylabel="Share of pneumonia",
        title=f"Calibration, {len(y_true)} images in {n_bins} bins",
    )
    return display


def worst_errors(y_true, y_score, threshold, n=4):
    """The most confident mistakes at ``threshold``, worst first.

    Parameters
    ----------
    y_true : array-like of shape (n_images,)
        0 (NORMAL) or 1 (PNEUMONIA).
    y_score : array-like of shape (n_images,)
        Pneumonia probabilities.
    threshold : float
        The decision threshold.
    n : int, default=4
        Most images of each kind.

    Returns
    -------
    false_negatives, false_positives : ndarray of int
        Indices of the missed pneumonias with the lowest probabilities, and of
        the normal images called pneumonia with the highest.

    Examples
    --------
    >>> from pneumoclf.plotting import worst_errors
    >>> missed, flagged = worst_errors([0, 0, 1, 1, 1], [0.9, 0.2, 0.3, 0.1, 0.8], 0.5)
    >>> missed.tolist(), flagged.tolist()
    ([3, 2], [0])
    """
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    called = is_pneumonia(y_score, threshold)
    missed = np.flatnonzero((y_true == 1) & ~called)
    flagged = np.flatnonzero((y_true == 0) & called)
    # A stable sort keeps ties in file order.
    missed = missed[np.argsort(y_score[missed], kind="stable")]
    flagged = flagged[np.argsort(-y_score[flagged], kind="stable")]
    return missed[:n], flagged[:n]


def plot_worst_errors(paths, y_true, y_score, threshold, *, n=4, figure=None):
    """Thumbnails of the worst false negatives and false positives, with their names.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        The image file of each score, in any format
        :class:`~pneumoclf.ImageLoader` reads.
    y_true, y_score, threshold, n
        As for :func:`worst_errors`.
    figure : matplotlib.figure.Figure, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows, the false negatives above, each thumbnail titled with its
        file name (shortened in the middle when long) and probability.
    """
    from .preprocessing import ImageLoader

    paths = np.asarray([str(path) for path in paths])
    y_score = np.asarray(y_score)
    rows = worst_errors(y_true, y_score, threshold, n)
    n_columns = max(1, max(len(row) for row in rows))
    # An empty row keeps room for its title only.
    heights = [_THUMBNAIL_ROW_INCHES if len(row) else 0.4 for row in rows]
    if figure is None:
        figure = _new_figure(width=2.2 * n_columns, height=sum(heights))
    loader = ImageLoader(image_size=_THUMBNAIL_SIZE, resize="pad")
    kinds = (
        "Missed pneumonia (false negatives)",
        "Normal called pneumonia (false positives)",
    )
    parts = figure.subfigures(2, 1, height_ratios=heights)
    for part, chosen, kind in zip(parts, rows, kinds, strict=True):
        part.suptitle(kind if len(chosen) else f"{kind}: none", weight="bold")
        if len(chosen) == 0:
            continue
        images = loader.transform(paths[chosen])
        for ax, index, image in zip_longest(
            part.subplots(1, n_columns, squeeze=False)[0], chosen, images
        ):
            ax.set_axis_off()
            if index is not None:
                ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
                name = _shortened(Path(paths[index]).name)
                # A file name is shown as written: "$" would start mathtext.
                ax.set_title(
                    f"{name}\np = {y_score[index]:.3f}", fontsize=8, parse_math=False
                )
    return figure


def _shortened(name):
    if len(name) <= _TITLE_CHARACTERS:
        return name
    keep = (_TITLE_CHARACTERS - 1) // 2
    return f"{name[:keep]}\u2026{name[-keep:]}"


def plot_training_curves(history, *, kept_epoch=None, axes=None):
    """Loss and ROC AUC per epoch, on the training and validation parts.

    Parameters
    ----------
    history : dict of list of float
        A fitted classifier's ``history_``.
    kept_epoch : int or None, default=None
        The epoch (from 1) whose weights the model kept, marked by a dashed
        line; see :func:`kept_epoch`.
    axes : sequence of 2 matplotlib.axes.Axes, default=None
        Where to draw the loss and the AUC; a new figure when None.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``axes``.
    """
    from matplotlib.ticker import MaxNLocator

    if axes is None:
        axes = _new_figure(ncols=2).subplots(ncols=2)
    for ax, metric, title in zip(
        axes, ("loss", "auc"), ("Loss", "ROC AUC"), strict=True
    ):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker=".", label=label)
        if kept_epoch is not None:
            ax.axvline(
                kept_epoch, color="grey", linestyle="--", label=f"kept: {kept_epoch}"
            )
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return axes[0].figure


def kept_epoch(classifier):
    """The epoch whose weights a fitted classifier kept, counted from 1.

    With early stopping, the network keeps the weights of the epoch with the
    best monitored validation figure (the first such epoch, as Keras counts
    only strict improvements); without it, those of the last epoch.

    Parameters
    ----------
    classifier : PneumoniaCNNClassifier
        A fitted classifier.

    Returns
    -------
    int or None
        None when the history is empty.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from pneumoclf.plotting import kept_epoch
    >>> fitted = SimpleNamespace(early_stopping=True, monitor="loss",
    ...                          history_={"val_loss": [0.7, 0.5, 0.6]}, n_epochs_=3)
    >>> kept_epoch(fitted)
    2
    """
    history = classifier.history_
    monitored = history.get(f"val_{classifier.monitor}")
    if not classifier.early_stopping or not monitored:
        return classifier.n_epochs_ or None
    values = np.asarray(monitored, dtype=float)
    if np.isnan(values).all():
        return classifier.n_epochs_ or None
    best = (
        np.nanargmin(values) if classifier.monitor == "loss" else np.nanargmax(values)
    )
    return int(best) + 1


def save_evaluation_figures(
    folder,
    y_true,
    y_score,
    threshold,
    history=None,
    *,
    groups=None,
    kept=None,
    paths=None,
    n_worst=4,
):
    """Write the figures of an evaluation as PNG files, named as in FIGURE_NAMES.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing.
    y_true, y_score, threshold
        As for :func:`plot_roc_curve`.
    history : dict of list of float, default=None
        A classifier's ``history_``; the training curves are drawn when given.
    groups : array-like of shape (n,), default=None
        The patient of each image, resampled by the ROC band.
    kept : int or None, default=None
        The epoch whose weights were kept, marked on the training curves.
    paths : sequence of str, default=None
        The image file of each score; the worst errors are drawn when given.
    n_worst : int, default=4
        Most false negatives and false positives drawn.

    Returns
    -------
    list of pathlib.Path
        The files written, each atomically.
    """
    require_matplotlib()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    roc, confusion, scores, calibration, training, errors = (
        folder / name for name in FIGURE_NAMES
    )
    figures = [
        (plot_roc_curve(y_true, y_score, threshold, groups=groups).figure_, roc),
        (plot_confusion_matrix(y_true, y_score, threshold).figure_, confusion),
        (plot_score_distributions(y_true, y_score, threshold).figure, scores),
        (plot_calibration_curve(y_true, y_score).figure_, calibration),
    ]
    if history:
        figures.append((plot_training_curves(history, kept_epoch=kept), training))
    if paths is not None:
        worst = plot_worst_errors(paths, y_true, y_score, threshold, n=n_worst)
        figures.append((worst, errors))
    return [_save(figure, path) for figure, path in figures]


def _labels_and_decisions(y_true, y_score, threshold):
    return np.asarray(y_true), is_pneumonia(y_score, threshold)


def _axes(ax):
    return _new_figure().subplots() if ax is None else ax


def _new_figure(ncols=1, *, width=None, height=4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = 5 * ncols if width is None else width
    figure = Figure(figsize=(width, height), layout="constrained")
    # Room between the labels and the edge of the image.
    figure.get_layout_engine().set(w_pad=_EDGE_PAD, h_pad=_EDGE_PAD)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    with atomic_open(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100)
    return path
