"""
Grad-CAM: where the network looks
=================================

A classifier's score says *whether* it sees pneumonia, not *where*. Grad-CAM
(Selvaraju et al., 2017) answers the second question: it follows the gradient
of the pneumonia score back to the last convolutional layer and paints the
regions whose features raised that score. This example trains a small
pipeline on the X-rays bundled with the package, then draws the heat maps of
a few held-out images over the original pictures.
"""

# %%
# Train on the bundled sample
# ---------------------------
# The sample holds 200 images, one per patient. :func:`~pneumoclf.patient_split`
# keeps a fifth of them aside, stratified by class. A few epochs on 64x64 images
# take seconds on a CPU; the model is far from a good one, but it is enough to
# show how to read the maps.

import matplotlib.pyplot as plt
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from pneumoclf import ImageLoader, PneumoniaCNNClassifier, load_sample, patient_split
from pneumoclf.explain import gradcam, overlay_heatmap

data = load_sample()
train, _, test = patient_split(
    data.paths, data.target, groups=data.groups, sizes=(0.8, 0, 0.2), random_state=0
)
pipeline = Pipeline(
    [
        ("load", ImageLoader(image_size=64)),
        (
            "cnn",
            PneumoniaCNNClassifier(epochs=15, early_stopping=False, random_state=0),
        ),
    ]
)
pipeline.fit(data.paths[train], data.target[train])
scores = pipeline.predict_proba(data.paths[test])[:, 1]
print(f"Held-out ROC AUC: {roc_auc_score(data.target[test], scores):.2f}")

# %%
# Heat maps of held-out images
# ----------------------------
# :func:`~pneumoclf.explain.gradcam` takes what the pipeline takes, here file
# paths, and returns one map per image at the network's input resolution (64x64),
# each scaled so that its hottest point is 1.
# :func:`~pneumoclf.explain.overlay_heatmap` lays a map over the original file
# at full resolution. We show three pneumonia and three normal test images.

shown = [*test[data.target[test] == 1][:3], *test[data.target[test] == 0][:3]]
heatmaps = gradcam(pipeline, data.paths[shown])

fig, axes = plt.subplots(2, 3, figsize=(9, 6.4), layout="constrained")
for ax, index, heatmap, score in zip(
    axes.flat,
    shown,
    heatmaps,
    pipeline.predict_proba(data.paths[shown])[:, 1],
    strict=True,
):
    ax.imshow(overlay_heatmap(data.paths[index], heatmap))
    label = data.target_names[data.target[index]]
    ax.set_title(f"{label}\nP(pneumonia) = {score:.2f}", fontsize=10)
    ax.axis("off")
plt.show()

# %%
# Reading the maps, and their limits
# ----------------------------------
# Red marks the regions whose features pushed the pneumonia score up most in
# *that* image; blue, those that did not push it up. Each map is scaled by its
# own maximum, so colours cannot be compared between images: a faint signal on
# a confidently normal image is stretched to full red as well, and an image
# with no evidence at all gets an all-blue (all-zero) map. Read a map together
# with the score above it.
#
# The maps are coarse. They have the resolution of the last convolutional
# layer, here a 9x9 grid of cells, each seeing a 32x32 patch of the 64x64
# input, so they point at a region of the chest, not at the outline of an
# opacity. The cells' centres cover only the middle of the image (its
# unpadded convolutions shrink the grid), so the map is held flat over the
# outer band, which shows as straight stripes near the edges.
#
# They show what the network *used*, not what is clinically right. That is
# what makes them worth drawing: a network that learns a shortcut, such as the
# "R" marker, text or tubes in a corner of the film, or the body outline that
# differs between hospitals, lights up on it, which no accuracy figure will
# reveal. A model trained on 160 images, like this one, often does exactly
# that: in this run, normal and pneumonia images alike light up mostly on the
# spine and the heart shadow rather than in the lung fields. Maps that stay on
# the lung fields are necessary for trust, never sufficient: Grad-CAM does not
# validate a model; a patient-grouped test set and a clinical reader do.
