"""Hyper-parameter tuning with Optuna, on patient-grouped splits.

:func:`tune` scores each of its trials on patients that the trial's network never
saw; :func:`default_search_space` is the space it searches unless told otherwise,
and :func:`limit_threads` shares a machine's cores between several workers.

Tuning needs the ``tune`` extra: ``pip install "pneumoclf[tune]"``.
"""

from ._spaces import default_search_space
from ._threads import limit_threads
from ._tune import tune

__all__ = ["default_search_space", "limit_threads", "tune"]

# The public names are documented, pickled and shown as this package's own.
for _name in __all__:
    if callable(globals()[_name]):
        globals()[_name].__module__ = __name__
del _name
