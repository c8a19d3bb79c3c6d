"""The evaluation figures: what each one shows, drawn from known numbers."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumoclf.plotting import (
    FIGURE_NAMES,
    plot_calibration_curve,
    plot_confusion_matrix,
    plot_roc_curve,
    plot_score_distributions,
    plot_training_curves,
    plot_worst_errors,
    save_evaluation_figures,
    worst_errors,
)

Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1])
Y_SCORE = np.array([0.1, 0.2, 0.6, 0.3, 0.4, 0.7, 0.8, 0.9])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_roc_curve_marks_the_operating_point():
    display = plot_roc_curve(Y_TRUE, Y_SCORE, threshold=0.5)
    assert display.roc_auc == pytest.approx(15 / 16)
    marker = display.ax_.lines[-1]
    # At 0.5: one false positive of four normals, three of four pneumonias found.
    assert marker.get_xdata()[0] == 0.25
    assert marker.get_ydata()[0] == 0.75
    assert marker.get_label() == "threshold 0.500"


def test_the_confusion_matrix_counts_the_decisions_at_the_threshold():
    display = plot_confusion_matrix(Y_TRUE, Y_SCORE, threshold=0.35)
    np.testing.assert_array_equal(display.confusion_matrix, [[3, 1], [0, 4]])
    assert display.ax_.get_title() == "Threshold 0.350 (share of each true class)"
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == [
        "NORMAL",
        "PNEUMONIA",
    ]


def test_training_curves_draw_both_parts_of_each_metric():
    history = {"loss": [0.7, 0.5], "val_loss": [0.8, 0.6], "auc": [0.6, 0.9]}
    figure = plot_training_curves(history)
    loss, auc = figure.axes
    assert [line.get_label() for line in loss.lines] == ["train", "validation"]
    np.testing.assert_array_equal(loss.lines[1].get_ydata(), [0.8, 0.6])
    assert [line.get_label() for line in auc.lines] == ["train"]


@pytest.fixture
def xray_files(tmp_path):
    """One small grayscale PNG per score, each of its own brightness."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i, score in enumerate(Y_SCORE):
        path = folder / f"case_{i}_with_a_rather_long_file_name.png"
        Image.new("L", (24, 20), int(255 * score)).save(path)
        paths.append(str(path))
    return paths


def test_the_figures_are_written_as_png_files(tmp_path, xray_files):
    written = save_evaluation_figures(
        tmp_path / "report",
        Y_TRUE,
        Y_SCORE,
        0.5,
        {"loss": [1.0, 0.5]},
        paths=xray_files,
    )
    assert [path.name for path in written] == list(FIGURE_NAMES)
    for path in written:
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(
        FIGURE_NAMES
    )


def test_without_history_or_files_those_figures_are_left_out(tmp_path):
    written = save_evaluation_figures(tmp_path, Y_TRUE, Y_SCORE, 0.5)
    assert [path.name for path in written] == list(FIGURE_NAMES[:4])


def test_the_score_distributions_count_each_class_per_bin():
    ax = plot_score_distributions(Y_TRUE, Y_SCORE, 0.35, bins=4)
    normal, pneumonia = ax.containers
    # Bins [0, .25), [.25, .5), [.5, .75), [.75, 1].
    assert [bar.get_height() for bar in normal] == [2, 1, 1, 0]
    assert [bar.get_height() for bar in pneumonia] == [0, 1, 1, 2]
    assert ax.get_legend_handles_labels()[1] == [
        "NORMAL (4)",
        "PNEUMONIA (4)",
        "threshold 0.350",
    ]
    (threshold,) = ax.lines
    assert list(threshold.get_xdata()) == [0.35, 0.35]
    assert threshold.get_label() == "threshold 0.350"


def test_the_calibration_curve_bins_equal_counts():
    display = plot_calibration_curve(Y_TRUE, Y_SCORE, n_bins=2)
    # The four lowest scores (0.1, 0.2, 0.3, 0.4) hold one pneumonia.
    np.testing.assert_allclose(display.prob_true, [0.25, 0.75])
    np.testing.assert_allclose(display.prob_pred, [0.25, 0.75])
    assert display.ax_.get_title() == "Calibration, 8 images in 2 bins"


def test_worst_errors_are_the_most_confident_mistakes_first():
    missed, flagged = worst_errors(Y_TRUE, Y_SCORE, 0.65)
    # Missed at 0.65: the pneumonias scored 0.4 (index 4), then none lower.
    assert missed.tolist() == [4]
    assert flagged.tolist() == []
    missed, flagged = worst_errors(Y_TRUE, Y_SCORE, 0.15)
    assert missed.tolist() == []
    assert flagged.tolist() == [2, 3, 1]  # scores 0.6, 0.3, 0.2
    assert worst_errors(Y_TRUE, Y_SCORE, 0.15, n=2)[1].tolist() == [2, 3]


def test_worst_errors_keep_ties_in_file_order():
    missed, _ = worst_errors([1, 1, 1], [0.2, 0.1, 0.2], 0.5)
    assert missed.tolist() == [1, 0, 2]


def test_the_worst_errors_figure_shows_each_image_with_its_name(xray_files):
    figure = plot_worst_errors(xray_files, Y_TRUE, Y_SCORE, 0.35, n=2)
    missed, flagged = figure.subfigs
    assert missed.get_suptitle() == "Missed pneumonia (false negatives): none"
    assert flagged.get_suptitle() == "Normal called pneumonia (false positives)"
    (shown,) = [ax for ax in flagged.axes if ax.images]
    assert shown.get_title() == "case_2_with_a\u2026file_name.png\np = 0.600"
    pixels = shown.images[0].get_array()
    assert pixels.shape == (160, 160)
    # Padded to keep the aspect ratio: black borders, the image's gray inside.
    assert pixels[0, 80] == 0
    assert pixels[80, 80] == pytest.approx(round(255 * 0.6) / 255, abs=0.01)


def test_file_names_with_mathtext_are_drawn_as_written(xray_files, tmp_path):
    odd = []
    names = ["$\\frac{1$.png", "a_$x^2$.png", "$$.png", r"\$unbalanced{.png"]
    for path, name in zip(xray_files, names, strict=False):
        renamed = Path(path).with_name(name)
        Path(path).rename(renamed)
        odd.append(str(renamed))
    paths = odd + xray_files[len(odd) :]
    figure = plot_worst_errors(paths, Y_TRUE, Y_SCORE, 0.35, n=4)
    figure.savefig(tmp_path / "worst.png")  # mathtext would fail to parse here
    titles = [ax.get_title() for sub in figure.subfigs for ax in sub.axes if ax.images]
    assert any(title.startswith("$") for title in titles)


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "pneumoclf\[plot\]"'):
        save_evaluation_figures(tmp_path, Y_TRUE, Y_SCORE, 0.5)
    assert list(tmp_path.iterdir()) == []


def test_the_roc_curve_has_a_confidence_band_and_says_how_many_images():
    display = plot_roc_curve(Y_TRUE, Y_SCORE, threshold=0.5)
    (band,) = display.ax_.collections
    assert band.get_label() == "95% band"
    assert display.ax_.get_title() == "ROC curve, 4 pneumonia and 4 normal images"
    without = plot_roc_curve(Y_TRUE, Y_SCORE, 0.5, confidence=None)
    assert [c.get_label() for c in without.ax_.collections] == []


def test_a_perfect_ranking_has_a_band_at_full_recall():
    from pneumoclf.plotting import _roc_band

    low, high = _roc_band(Y_TRUE, np.arange(8) / 8, None, 0.95, 100, 0)
    np.testing.assert_array_equal(low, 1.0)
    np.testing.assert_array_equal(high, 1.0)


def test_the_band_resamples_patients_when_given_them():
    from pneumoclf.plotting import _roc_band

    # Each patient has two identical images: resampling patients has half as
    # many independent draws as resampling images, so its band is wider.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(40) % 2, 2)
    scores = np.repeat(rng.random(40) * 0.6 + 0.4 * (np.arange(40) % 2), 2)
    patients = np.repeat(np.arange(40), 2)
    by_image = np.diff(_roc_band(y, scores, None, 0.95, 300, 0), axis=0).sum()
    by_patient = np.diff(_roc_band(y, scores, patients, 0.95, 300, 0), axis=0).sum()
    assert by_patient > 1.2 * by_image


def test_the_confusion_matrix_shows_counts_and_the_share_of_each_true_class():
    display = plot_confusion_matrix(Y_TRUE, Y_SCORE, threshold=0.35)
    texts = [[text.get_text() for text in row] for row in display.text_]
    assert texts == [["3\n75.0%", "1\n25.0%"], ["0\n0.0%", "4\n100.0%"]]


def test_training_curves_mark_the_kept_epoch():
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.7]}
    loss, _ = plot_training_curves(history, kept_epoch=2).axes
    kept = loss.lines[-1]
    assert kept.get_label() == "kept: 2"
    assert list(kept.get_xdata()) == [2, 2]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"monitor": "loss", "early_stopping": True}, 2),
        ({"monitor": "auc", "early_stopping": True}, 3),
        ({"monitor": "loss", "early_stopping": False}, 4),
    ],
)
def test_kept_epoch_is_the_best_monitored_epoch_under_early_stopping(
    settings, expected
):
    from types import SimpleNamespace

    from pneumoclf.plotting import kept_epoch

    history = {
        "val_loss": [float("nan"), 0.5, 0.5, 0.6],  # a partial_fit epoch first
        "val_auc": [float("nan"), 0.8, 0.9, 0.9],
    }
    fitted = SimpleNamespace(history_=history, n_epochs_=4, **settings)
    assert kept_epoch(fitted) == expected
