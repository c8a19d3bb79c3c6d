"""Figures of an evaluation: ROC curve, confusion matrix, training curves.

Each function draws on a matplotlib ``Axes`` (a new figure when none is given) and
returns scikit-learn's display object where one fits, so that users, the docs and
``pneumoclf evaluate --report-dir`` draw the same figures. The figures are made
without :mod:`matplotlib.pyplot`, so no window or GUI backend is involved.

Needs the ``plot`` extra: ``pip install "pneumoclf[plot]"``.
"""

from pathlib import Path

import numpy as np

from ._utils import atomic_open, is_pneumonia

__all__ = [
    "FIGURE_NAMES",
    "plot_confusion_matrix",
    "plot_roc_curve",
    "plot_training_curves",
    "save_evaluation_figures",
]

#: Files :func:`save_evaluation_figures` writes, in that order.
FIGURE_NAMES = ("roc_curve.png", "confusion_matrix.png", "training_curves.png")

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


def plot_roc_curve(y_true, y_score, threshold, *, ax=None):
    """ROC curve with the operating point at ``threshold`` marked.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        0 (NORMAL) or 1 (PNEUMONIA).
    y_score : array-like of shape (n,)
        Pneumonia probabilities.
    threshold : float
        The decision threshold whose recall and false positive rate are marked.
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
    )
    display.ax_.legend(loc="lower right")
    return display


def plot_confusion_matrix(y_true, y_score, threshold, *, ax=None):
    """Confusion matrix of the decisions at ``threshold``.

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
    display.ax_.set_title(f"Threshold {threshold:.3f}")
    return display


def plot_training_curves(history, *, axes=None):
    """Loss and ROC AUC per epoch, on the training and validation parts.

    Parameters
    ----------
    history : dict of list of float
        A fitted classifier's ``history_``.
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
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    return axes[0].figure


def save_evaluation_figures(folder, y_true, y_score, threshold, history=None):
    """Write the ROC curve, the confusion matrix and the training curves as PNGs.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing.
    y_true, y_score, threshold
        As for :func:`plot_roc_curve`.
    history : dict of list of float, default=None
        A classifier's ``history_``; the training curves are drawn when given.

    Returns
    -------
    list of pathlib.Path
        The files written, each atomically.
    """
    require_matplotlib()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    roc, confusion, training = (folder / name for name in FIGURE_NAMES)
    written = [
        _save(plot_roc_curve(y_true, y_score, threshold).figure_, roc),
        _save(plot_confusion_matrix(y_true, y_score, threshold).figure_, confusion),
    ]
    if history:
        written.append(_save(plot_training_curves(history), training))
    return written


def _labels_and_decisions(y_true, y_score, threshold):
    return np.asarray(y_true), is_pneumonia(y_score, threshold)


def _axes(ax):
    return _new_figure().subplots() if ax is None else ax


def _new_figure(ncols=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * ncols, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    with atomic_open(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100)
    return path
