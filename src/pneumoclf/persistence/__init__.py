"""Save fitted models to one file that is safe to open, and load them back.

:func:`save_model` writes a fitted :class:`~pneumoclf.PneumoniaCNNClassifier`, or a
fitted :class:`~sklearn.pipeline.Pipeline` of :class:`~pneumoclf.ImageLoader` steps
ending in one, to a single ``.pneumoclf`` file; :func:`load_model` reads it back,
ready to predict, without training.

Pickle and joblib keep working and remain the standard scikit-learn route, but
unpickling runs code chosen by whoever wrote the file: only load pickles you trust.
A ``.pneumoclf`` file holds only JSON and a Keras model in the native ``.keras``
format, of which only the weights are read, into a network rebuilt from the
classifier's parameters: opening one received from someone else runs none of its
content. It also records the versions that wrote it and a checksum, so that a
damaged or incompatible file is refused with a clear message instead of failing
later; an optional key signs it, so that an altered one is refused too.

The file is a zip archive of these members:

``metadata.json``
    The format name and version, the pneumoclf and Keras versions, the estimator's
    structure (pipeline steps, their classes and ``get_params()``), the fitted
    state the classifier needs to predict, and the SHA-256 checksum of the model.
``model.keras``
    The trained network, as written by ``keras.Model.save``.
``model_card.md``
    Optional: the model card (:func:`pneumoclf.report.model_card`), in UTF-8
    Markdown, which :func:`read_model_card` returns; its SHA-256 is in the
    metadata.
``signature.hmac``
    Only in a signed file: the HMAC-SHA256, in hexadecimal, of the names and
    SHA-256 digests of the other members.
"""

import importlib

from .._deprecation import made_private
from .._utils import atomic_open as _atomic_open
from ..exceptions import ModelFileError
from . import _archive, _format
from ._archive import is_signed, read_model_card

__all__ = [
    "FORMAT_VERSION",
    "MIN_KEY_BYTES",
    "ModelFileError",
    "is_signed",
    "load_model",
    "read_model_card",
    "save_model",
]

#: Version of the file format, ``"major.minor"``.
#:
#: Files of the same major version are read; a new minor version only adds entries.
#: Version 2.0 stores the classifier's fitted attributes under their own names; 2.1
#: adds the optional ``signature.hmac`` member; 2.2 the optional ``model_card.md``
#: member and the ``validation_report_`` attribute; 2.3 the ``input_reference_``
#: attribute (the input check); 2.4 ``population_reference_`` and ``adaptations_``
#: (:mod:`pneumoclf.site`); 2.5 ``training_digests_``. Files of version 1.x are still
#: read.
FORMAT_VERSION = _format.FORMAT_VERSION

#: Fewest bytes a signing key may hold; a shorter ``key`` is refused.
MIN_KEY_BYTES = _archive.MIN_KEY_BYTES

# Loading and saving need TensorFlow and scikit-learn; reading a card or telling a
# signed file does not, so those two are imported on first use.
_HEAVY = {"load_model": "_loading", "save_model": "_saving"}

# The functions are documented, pickled and shown as this package's own.
for _function in (is_signed, read_model_card):
    _function.__module__ = __name__
del _function


def __getattr__(name):
    if name in _HEAVY:
        function = getattr(importlib.import_module(f".{_HEAVY[name]}", __name__), name)
        function.__module__ = __name__
        globals()[name] = function
        return function
    return made_private(__name__, name, {"atomic_open": _atomic_open})


def __dir__():
    return sorted(set(globals()) | set(__all__))
