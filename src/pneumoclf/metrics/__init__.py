"""Recall-first metrics, scorers and the clinical report.

A missed pneumonia costs far more than a false alarm, so model selection favours
recall (sensitivity) on the pneumonia class. Favouring recall alone rewards the
degenerate classifier that calls every X-ray pneumonia, so both scorers here refuse
operating points whose specificity (or recall) falls short of a floor.

Labels may be ``0``/``1``, ``False``/``True`` or ``"NORMAL"``/``"PNEUMONIA"``. Unless
``pos_label`` is given, the positive class (pneumonia) is the greater of the two labels
in sorted order. When the data hold a single label, it is recognised through these
known pairs; any other single label needs an explicit ``pos_label``.
"""

from ._referral import referral_bounds, referral_mask, referral_tradeoff
from ._report import (
    clinical_report,
    clinical_report_rows,
    format_clinical_report,
    wilson_interval,
)
from ._scores import (
    make_recall_weighted_scorer,
    make_specificity_at_recall_scorer,
    recall_weighted_score,
    specificity_at_recall_score,
    specificity_score,
)
from ._threshold import choose_threshold

__all__ = [
    "choose_threshold",
    "clinical_report",
    "clinical_report_rows",
    "format_clinical_report",
    "make_recall_weighted_scorer",
    "make_specificity_at_recall_scorer",
    "recall_weighted_score",
    "referral_bounds",
    "referral_mask",
    "referral_tradeoff",
    "specificity_at_recall_score",
    "specificity_score",
    "wilson_interval",
]

# The public names are documented, pickled and shown as this package's own.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
