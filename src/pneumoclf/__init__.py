"""Recall-first pneumonia detection on pediatric chest X-rays."""

from .classifier import PneumoniaCNNClassifier
from .datasets import load_chest_xray, load_sample, patient_id
from .metrics import (
    choose_threshold,
    clinical_report,
    make_recall_weighted_scorer,
    make_specificity_at_recall_scorer,
)
from .model_selection import patient_split
from .preprocessing import ImageLoader, ImageLoadError

__version__ = "0.1.0.dev0"

__all__ = [
    "ImageLoadError",
    "ImageLoader",
    "PneumoniaCNNClassifier",
    "__version__",
    "choose_threshold",
    "clinical_report",
    "load_chest_xray",
    "load_sample",
    "make_recall_weighted_scorer",
    "make_specificity_at_recall_scorer",
    "patient_id",
    "patient_split",
]
