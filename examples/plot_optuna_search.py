"""
Tuning with Optuna
==================

:func:`~pneumoclf.tuning.tune` runs an Optuna study over the whole
pipeline: the image size, the network, its training and the threshold rule. It
splits the images once by patient, trains one network per trial on one part and
scores it on the other, then retrains the best trial's pipeline on all the images.

A real search runs tens of trials of tens of epochs on the full data. This one
runs 3 trials of 2 epochs on the bundled sample, to show the mechanics in seconds.
It needs the ``tune`` extra: ``pip install "pneumoclf[tune]"``.
"""

# %%
# The search space
# ----------------
# :func:`~pneumoclf.tuning.default_search_space` returns Optuna
# distributions keyed by pipeline parameter (``load__`` for the
# :class:`~pneumoclf.ImageLoader`, ``cnn__`` for the classifier). It is a plain
# dict: change or remove entries as needed.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pneumoclf import load_sample
from pneumoclf.metrics import make_recall_weighted_scorer
from pneumoclf.tuning import default_search_space, tune

space = default_search_space()
for name, distribution in space.items():
    print(f"{name:<20} {distribution}")

# %%
# A small study
# -------------
# ``fixed_params`` sets parameters in every trial and takes them out of the
# search. The recall-weighted scorer ranks trials by F2 on pneumonia, refusing
# those whose specificity falls below 0.5. The study lives in a SQLite file, so
# that it can be continued, here and from other processes.

data = load_sample()
folder = tempfile.mkdtemp()
storage = f"sqlite:///{Path(folder) / 'study.db'}"
settings = dict(
    fixed_params={"cnn__epochs": 2, "load__image_size": 32},
    scoring=make_recall_weighted_scorer(),
    storage=storage,
    study_name="pneumonia-demo",
    random_state=0,
    verbose=0,
)
study, _ = tune(data.paths, data.target, n_trials=2, refit=False, **settings)
print(f"{len(study.trials)} trials in the study")

# %%
# Sharing a study
# ---------------
# Another call with the same ``storage``, ``study_name``, data and
# ``random_state`` continues the same study: ``n_trials`` counts the trials the
# study holds, whoever ran them. Started on several machines with a database
# URL such as ``"postgresql://user:password@host/database"``, the calls share
# the trials between them. This call runs the third trial, then retrains the best
# pipeline on all the images.

study, best_pipeline = tune(data.paths, data.target, n_trials=3, **settings)
print(f"{len(study.trials)} trials; best score {study.best_value:.3f}")
for name, value in study.best_params.items():
    print(
        f"  {name} = {value:.3g}" if isinstance(value, float) else f"  {name} = {value}"
    )

# %%
# Each trial records where it ran and what it measured, besides its score:
# the validation ROC AUC, the threshold the classifier chose, the epochs run.

columns = ["number", "value", "user_attrs_validation_auc", "user_attrs_threshold"]
print(study.trials_dataframe()[columns].round(3).to_string(index=False))

# %%
# The scores of the trials, and the best so far. A negative score marks a trial
# whose specificity fell below the scorer's floor. (With a storage, Optuna's
# sampler is seeded by the system, so that processes sharing a study try
# different parameters: the trials differ from one run of this example to the
# next.)

values = [trial.value for trial in study.trials]
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.plot(range(len(values)), values, "o", label="trial")
ax.step(range(len(values)), np.maximum.accumulate(values), where="post", label="best")
ax.set(xlabel="trial", ylabel="recall-weighted score", xticks=range(len(values)))
ax.legend()
plt.show()

# %%
# The returned pipeline is fitted and ready to predict from file paths.

print(best_pipeline.predict_proba(data.paths[:3])[:, 1].round(3))
