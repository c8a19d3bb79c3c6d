"""
Quick start: from X-ray files to clinical figures
=================================================

A :class:`~sklearn.pipeline.Pipeline` of :class:`~pneumoclf.ImageLoader` and
:class:`~pneumoclf.PneumoniaCNNClassifier` takes image *file paths*: the loader
reads and resizes the images, the CNN learns from them. This example trains one
on the 200 real chest X-rays bundled with the package, evaluates it on patients it
never saw, and draws its ROC curve and confusion matrix.

200 images are far too few to judge a model: the figures below show the workflow,
not the quality the full data set supports.
"""

# %%
# The bundled sample
# ------------------
# :func:`~pneumoclf.load_sample` returns a :class:`~sklearn.utils.Bunch` of file
# paths, labels (0 for NORMAL, 1 for PNEUMONIA) and patient ids. The sample holds
# one image per patient, 100 of each class.

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay
from sklearn.pipeline import Pipeline

from pneumoclf import ImageLoader, PneumoniaCNNClassifier, load_sample, patient_split
from pneumoclf.metrics import clinical_report, format_clinical_report

data = load_sample()
for i in (0, -1):
    print(Path(data.paths[i]).name, data.target_names[data.target[i]], data.groups[i])
print("images per class:", np.bincount(data.target))

# %%
# A split by patient
# ------------------
# :func:`~pneumoclf.patient_split` keeps every patient's images on one side and
# the class proportions on both. Here 80% of the patients train the model and 20%
# test it (no separate validation part: the classifier holds out its own).

train, _, test = patient_split(
    data.paths, data.target, groups=data.groups, sizes=(0.8, 0.0, 0.2), random_state=0
)
print(f"train: {len(train)} images, test: {len(test)} images")

# %%
# Train the pipeline
# ------------------
# The classifier's defaults build the reference network (three blocks of 5x5
# convolutions with 32 filters, ReLU and 2x2 max pooling; a dense layer of 128
# units; a sigmoid output). Few epochs on 64x64 images keep this example at a few
# seconds on a CPU. ``threshold="auto"`` chooses the decision threshold on the
# classifier's own validation part, a stratified fifth of the training images,
# favouring recall. ``random_state`` makes the fit repeatable on a CPU.

pipe = Pipeline(
    [
        ("load", ImageLoader(image_size=64)),
        (
            "cnn",
            PneumoniaCNNClassifier(
                epochs=20,
                patience=5,
                validation_fraction=0.2,
                threshold="auto",
                random_state=0,
            ),
        ),
    ]
)
pipe.fit(data.paths[train], data.target[train])
cnn = pipe.named_steps["cnn"]
print(f"{cnn.n_epochs_} epochs run; decision threshold {cnn.threshold_:.3f}")

# %%
# Predict and report
# ------------------
# ``predict_proba(paths)[:, 1]`` is the probability of pneumonia; ``predict``
# applies the decision threshold. :func:`~pneumoclf.metrics.clinical_report`
# gathers the figures a clinician reads at one operating point.

scores = pipe.predict_proba(data.paths[test])[:, 1]
report = clinical_report(data.target[test], scores, threshold=cnn.threshold_)
print(format_clinical_report(report))

# %%
# ROC curve and confusion matrix
# ------------------------------
# scikit-learn's displays take the labels and scores directly. The ROC curve
# shows every operating point the model offers; the confusion matrix the one that
# ``predict`` uses.

fig, (ax_roc, ax_cm) = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
RocCurveDisplay.from_predictions(
    data.target[test], scores, name="CNN", plot_chance_level=True, ax=ax_roc
)
ax_roc.set_title("ROC curve, held-out patients")
ConfusionMatrixDisplay.from_predictions(
    data.target[test],
    pipe.predict(data.paths[test]),
    display_labels=data.target_names,
    colorbar=False,
    ax=ax_cm,
)
ax_cm.set_title(f"Threshold {cnn.threshold_:.2f}")
plt.show()

# %%
# With 40 test images, one misclassified X-ray moves recall or specificity by
# 5 points: the figures are only as precise as the test set is large. Train and
# evaluate on the full data set (:func:`~pneumoclf.load_chest_xray`) with a
# patient-grouped split for figures that mean something.
