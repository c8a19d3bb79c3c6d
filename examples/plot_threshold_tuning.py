"""
Choosing the operating threshold
================================

The network outputs a probability of pneumonia; a *threshold* turns it into a
decision. Lowering it finds more pneumonia (higher recall, or sensitivity) at the
cost of more false alarms (lower specificity). A missed pneumonia in a child costs
more than a false alarm, so pneumoclf chooses thresholds for recall, but never
lets "call everything pneumonia" win.

This example trains one pipeline, then compares three ways to pick its threshold,
each chosen on a validation part and checked on other patients:

* :func:`~pneumoclf.choose_threshold`, the rule behind ``threshold="auto"``;
* the same with a required recall (``min_recall``, or ``target_recall`` on the
  classifier);
* scikit-learn's :class:`~sklearn.model_selection.TunedThresholdClassifierCV`
  with a pneumoclf scorer.
"""

# %%
# Train on one set of patients
# ----------------------------
# The bundled sample is split by patient into training (60%), validation (20%)
# and test (20%) parts. The validation part chooses thresholds; the test part
# only measures them.

import matplotlib.pyplot as plt
from sklearn.metrics import roc_curve
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline

from pneumoclf import (
    ImageLoader,
    PneumoniaCNNClassifier,
    choose_threshold,
    clinical_report,
    load_sample,
    make_specificity_at_recall_scorer,
    patient_split,
)

data = load_sample()
paths, y = data.paths, data.target
train, val, test = patient_split(
    paths, y, groups=data.groups, sizes=(0.6, 0.2, 0.2), random_state=0
)

pipe = Pipeline(
    [
        ("load", ImageLoader(image_size=64)),
        (
            "cnn",
            PneumoniaCNNClassifier(epochs=15, early_stopping=False, random_state=0),
        ),
    ]
)
pipe.fit(paths[train], y[train])
val_scores = pipe.predict_proba(paths[val])[:, 1]
test_scores = pipe.predict_proba(paths[test])[:, 1]

# %%
# Recall first, with a specificity floor
# --------------------------------------
# :func:`~pneumoclf.choose_threshold` maximises the F2 score (recall weighs four
# times as much as precision) among the thresholds whose specificity is at least
# ``min_specificity`` (0.5 by default). Without that floor, a model that calls
# every X-ray pneumonia would score an F2 of about 0.93 on data with 74%
# pneumonia. With ``min_recall``, it instead returns the threshold with the best
# specificity among those that reach the required recall.

f2_threshold = choose_threshold(y[val], val_scores)
recall_threshold = choose_threshold(y[val], val_scores, min_recall=0.95)

# %%
# The trade-off
# -------------
# Every threshold gives one (recall, specificity) pair. ``roc_curve`` lists them
# all: recall is the true positive rate, specificity is one minus the false
# positive rate. The two chosen thresholds are marked.

fpr, recall, thresholds = roc_curve(y[val], val_scores)
specificity = 1 - fpr
inside = thresholds <= 1  # roc_curve starts with an infinite threshold

fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
ax.plot(thresholds[inside], recall[inside], drawstyle="steps-post", label="recall")
ax.plot(
    thresholds[inside], specificity[inside], drawstyle="steps-post", label="specificity"
)
ax.axvline(f2_threshold, color="grey", linestyle="--", label="F2 with floor")
ax.axvline(recall_threshold, color="grey", linestyle=":", label="recall >= 0.95")
ax.set(xlabel="threshold on P(pneumonia)", ylabel="validation rate", xlim=(0, 1))
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
plt.show()

# %%
# Each threshold on the validation patients, where it was chosen, and on the
# test patients, which measure it:


def summary(name, threshold):
    line = f"{name:<29} {threshold:9.3f}"
    for part, scores in ((val, val_scores), (test, test_scores)):
        report = clinical_report(y[part], scores, threshold)
        line += f"   {report['recall']:6.2f} {report['specificity']:11.2f}"
    print(line)


print(f"{'':<29} {'threshold':>9}   {'validation':^18}   {'test':^18}")
print(f"{'':<29} {'':>9}   recall specificity   recall specificity")

summary("default 0.5", 0.5)
summary("F2 with specificity floor", f2_threshold)
summary("best specificity, recall 95%", recall_threshold)

# %%
# A threshold changes without retraining: it is a parameter of the classifier,
# applied by ``predict``.

pipe.set_params(cnn__threshold=recall_threshold)
print("pneumonia predicted:", int(pipe.predict(paths[test]).sum()), "of", len(test))

# %%
# The same inside ``fit``
# -----------------------
# ``PneumoniaCNNClassifier(threshold="auto")`` runs ``choose_threshold`` on its own
# validation part at the end of ``fit`` (with ``target_recall`` passed as
# ``min_recall``), so a pipeline or a search gets a recall-first threshold with no
# extra step. That validation part is a stratified share of the training images,
# held out by whole patients when ``fit`` is given the patients
# (``pipe.fit(paths, y, cnn__groups=groups)``); without them, on data with several
# images per patient, choose the threshold on separate patients, as above or with
# the tuner below.
#
# With scikit-learn's tuner
# -------------------------
# :class:`~sklearn.model_selection.TunedThresholdClassifierCV` searches the
# threshold that maximises a scorer. With ``cv="prefit"`` and ``refit=False`` it
# keeps the trained pipeline and tunes on the data given to ``fit``, which must be
# other patients than those the pipeline was trained on. Given the pipeline
# unfitted and a ``cv``, it would instead train one network per fold.

tuned = TunedThresholdClassifierCV(
    pipe,
    scoring=make_specificity_at_recall_scorer(min_recall=0.95),
    cv="prefit",
    refit=False,
)
tuned.fit(paths[val], y[val])
summary("best specificity, recall 95%", recall_threshold)
summary("TunedThresholdClassifierCV", tuned.best_threshold_)

# %%
# The tuner tries 100 evenly spaced thresholds and keeps the lowest of equally
# good ones, where :func:`~pneumoclf.choose_threshold` tries every distinct
# score and keeps the highest: their thresholds can differ even when their
# validation figures agree.

# %%
# With 40 validation images the chosen thresholds are coarse: each image moves a
# rate by 5 points, and a threshold that reaches 95% recall on the validation
# patients may miss it on the test patients, as a threshold chosen on one
# population may on another. Choose it on as many patients as possible, from
# the population the model will serve.
