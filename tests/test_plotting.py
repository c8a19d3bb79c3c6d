"""The evaluation figures: what each one shows, drawn from known numbers."""

import numpy as np
import pytest

from pneumoclf.plotting import (
    FIGURE_NAMES,
    plot_confusion_matrix,
    plot_roc_curve,
    plot_training_curves,
    save_evaluation_figures,
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
    assert display.ax_.get_title() == "Threshold 0.350"
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


def test_the_figures_are_written_as_png_files(tmp_path):
    written = save_evaluation_figures(
        tmp_path / "report", Y_TRUE, Y_SCORE, 0.5, {"loss": [1.0, 0.5]}
    )
    assert [path.name for path in written] == list(FIGURE_NAMES)
    for path in written:
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(
        FIGURE_NAMES
    )


def test_without_history_the_training_curves_are_left_out(tmp_path):
    written = save_evaluation_figures(tmp_path, Y_TRUE, Y_SCORE, 0.5)
    assert [path.name for path in written] == list(FIGURE_NAMES[:2])


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "pneumoclf\[plot\]"'):
        save_evaluation_figures(tmp_path, Y_TRUE, Y_SCORE, 0.5)
    assert list(tmp_path.iterdir()) == []
