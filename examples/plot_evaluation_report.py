"""
Evaluation figures, the report page and the model card
======================================================

Every figure of ``pneumoclf evaluate --report-dir`` is a function of
:mod:`pneumoclf.plotting` that draws on a matplotlib ``Axes``, so a notebook shows
the same figures as the report page. This example trains the recipe on 80% of
the patients of the bundled sample, then draws each figure for the other 20%,
writes the report page with :func:`~pneumoclf.report.write_report` and the model
card with :func:`~pneumoclf.report.model_card`.

Forty held-out patients give wide intervals: the point of the figures is to show
how wide.
"""

# %%
# Train on some patients, score the others
# ----------------------------------------

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.utils import Bunch

from pneumoclf import load_sample, patient_split
from pneumoclf.plotting import (
    kept_epoch,
    plot_calibration_curve,
    plot_confusion_matrix,
    plot_roc_curve,
    plot_score_distributions,
    plot_training_curves,
    plot_worst_errors,
)
from pneumoclf.recipes import make_pipeline
from pneumoclf.report import model_card, write_report

data = load_sample()
train, _, test = patient_split(
    data.paths, data.target, groups=data.groups, sizes=(0.8, 0.0, 0.2), random_state=0
)
pipeline = make_pipeline(
    cnn__epochs=30, cnn__random_state=0, cnn__validation_fraction=0.2
)
pipeline.fit(data.paths[train], data.target[train], cnn__groups=data.groups[train])
classifier = pipeline[-1]
y_true = data.target[test]
y_score = pipeline.predict_proba(data.paths[test])[:, 1]
threshold = classifier.threshold_

# %%
# ROC curve and confusion matrix
# ------------------------------
# The band resamples patients (``groups``), the dot is the model's threshold; the
# confusion matrix gives each cell's share of its true class.

fig, (left, right) = plt.subplots(ncols=2, figsize=(10, 4.5), layout="constrained")
plot_roc_curve(y_true, y_score, threshold, groups=data.groups[test], ax=left)
plot_confusion_matrix(y_true, y_score, threshold, ax=right)
plt.show()

# %%
# Scores of each class, and calibration
# -------------------------------------
# Right of the dashed line is called pneumonia. The reliability curve compares
# the predicted probabilities with the share of pneumonia among the images that
# got them.

fig, (left, right) = plt.subplots(ncols=2, figsize=(10, 4.5), layout="constrained")
plot_score_distributions(y_true, y_score, threshold, ax=left)
plot_calibration_curve(y_true, y_score, n_bins=5, ax=right)
plt.show()

# %%
# Training curves
# ---------------
# The dashed line marks the epoch whose weights the model kept.

fig, axes = plt.subplots(ncols=2, figsize=(10, 4), layout="constrained")
plot_training_curves(classifier.history_, kept_epoch=kept_epoch(classifier), axes=axes)
plt.show()

# %%
# The worst errors
# ----------------
# The missed pneumonias with the lowest probabilities and the normal images with
# the highest, each with its file name: the first images to look at.

plot_worst_errors(
    data.paths[test],
    y_true,
    y_score,
    threshold,
    n=3,
    figure=plt.figure(figsize=(7, 5.2), layout="constrained"),
)
plt.show()

# %%
# The report page and the model card
# ----------------------------------
# :func:`~pneumoclf.report.write_report` writes all of the above as one HTML page
# with the figures embedded, which opens without network access;
# ``pneumoclf train`` writes the model card into the model file and
# ``pneumoclf info MODEL`` prints it.

card = model_card(pipeline, Bunch(target=data.target[train], groups=data.groups[train]))
with tempfile.TemporaryDirectory() as folder:
    page = write_report(
        folder,
        y_true,
        y_score,
        threshold,
        paths=data.paths[test],
        groups=data.groups[test],
        history=classifier.history_,
        kept_epoch=kept_epoch(classifier),
        model_card=card,
    )
    print(
        page.name,
        f"{page.stat().st_size / 1e3:.0f} kB,",
        sorted(path.name for path in Path(folder).iterdir()),
    )
print("\n".join(card.splitlines()[:12]))
