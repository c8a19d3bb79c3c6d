"""Recall-first pneumonia detection on pediatric chest X-rays.

The public names below are imported on first use, so that ``import pneumoclf`` and
the command line start without loading TensorFlow until a model is needed.
"""

import importlib

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "ImageLoadError": "exceptions",
    "ImageLoader": "preprocessing",
    "ModelFileError": "exceptions",
    "PneumoniaCNNClassifier": "classifier",
    "choose_threshold": "metrics",
    "clinical_report": "metrics",
    "load_chest_xray": "datasets",
    "load_model": "persistence",
    "load_sample": "datasets",
    "make_recall_weighted_scorer": "metrics",
    "make_specificity_at_recall_scorer": "metrics",
    "patient_id": "datasets",
    "patient_split": "model_selection",
    "save_model": "persistence",
    "SiteShiftWarning": "exceptions",
    "adapt_to_site": "site",
    "check_site": "site",
    "UntrainedNetworkWarning": "exceptions",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pneumoclf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
