"""Saving a fitted classifier or pipeline to a model file."""

import base64
import hashlib
import json
import math
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._utils import atomic_open as _atomic_open
from ..classifier import PneumoniaCNNClassifier
from ..exceptions import ModelFileError
from ..preprocessing import ImageLoader
from ._archive import _key_bytes, _pneumoclf_version, _sign
from ._format import (
    _METADATA,
    _MODEL,
    _MODEL_CARD,
    _SIGNATURE,
    _UNSAVED_PARAMS,
    FORMAT_NAME,
    FORMAT_VERSION,
    class_name,
)

# ---------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------


def save_model(estimator, path, *, key=None, model_card=None):
    """Save a fitted classifier or pipeline to one file that is safe to share.

    Use it to keep or share a trained model: the file can be opened by anyone
    without running code from it (see :func:`load_model`). Pickle or joblib also
    work and keep every attribute, but loading a pickle runs code chosen by its
    author, so only load pickles you trust.

    The file is written to a temporary file in the same folder, flushed to disk,
    then renamed over ``path``: an interrupted save never leaves a partial file.

    Parameters
    ----------
    estimator : PneumoniaCNNClassifier or Pipeline
        A fitted :class:`~pneumoclf.PneumoniaCNNClassifier`, or a fitted
        :class:`~sklearn.pipeline.Pipeline` whose last step is one and whose other
        steps are :class:`~pneumoclf.ImageLoader` (any step names).
    path : str or os.PathLike
        The file to write; the suffix ``.pneumoclf`` is customary. An existing
        file is replaced.
    key : str, bytes or None, default=None
        A secret to sign the file with (HMAC-SHA256 over every member). Anyone
        who loads it with the same key (``load_model(path, key=...)``) knows it
        comes from a holder of the key and has not been altered since. Without
        a key the file carries only a checksum, which detects accidental damage
        but not a deliberate change.
    model_card : str or None, default=None
        Markdown the file carries, such as :func:`pneumoclf.report.model_card`
        gives; :func:`read_model_card` returns it.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the classifier has not been fitted.
    ModelFileError
        If the estimator holds another kind of step, or a parameter whose value
        is not ``None``, a bool, a number, a string, or a list, tuple or dict of
        them (for example a ``RandomState`` as ``random_state``: set an int or
        ``None`` with ``set_params`` before saving).
    OSError
        If the file cannot be written, for example because its folder does not
        exist.

    Notes
    -----
    The ``callbacks`` parameter is stored as ``None``: callbacks act only while
    training, and Keras callback objects cannot be stored safely. Set them again
    before refitting a loaded model if needed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from pneumoclf import PneumoniaCNNClassifier
    >>> from pneumoclf.persistence import load_model, save_model
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((24, 16, 16)).astype("float32")
    >>> y = np.array(["NORMAL", "PNEUMONIA"] * 12)
    >>> clf = PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0)
    >>> clf = clf.fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save_model(clf, Path(folder) / "model.pneumoclf")
    ...     loaded = load_model(Path(folder) / "model.pneumoclf")
    >>> bool((loaded.predict_proba(X) == clf.predict_proba(X)).all())
    True
    >>> loaded.classes_
    array(['NORMAL', 'PNEUMONIA'], dtype='<U9')
    """
    classifier = _final_classifier(estimator)
    check_is_fitted(
        classifier,
        msg=(
            f"This {type(classifier).__name__} is not fitted yet; fit it before "
            "saving it."
        ),
    )
    model_bytes = _keras_model_bytes(classifier.model_)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pneumoclf_version": _pneumoclf_version(),
        "keras_version": keras.__version__,
        "estimator": _describe_estimator(estimator),
        "fitted": _fitted_state(classifier),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
    }
    members = {_MODEL: model_bytes}
    if model_card is not None:
        if not isinstance(model_card, str):
            raise TypeError(
                f"model_card must be a str, got {type(model_card).__name__}."
            )
        members[_MODEL_CARD] = model_card.encode("utf-8")
        metadata["model_card_sha256"] = hashlib.sha256(members[_MODEL_CARD]).hexdigest()
    members = {
        _METADATA: json.dumps(metadata, indent=2, allow_nan=False).encode(),
        **members,
    }
    if key is not None:
        members[_SIGNATURE] = _sign(
            [(name, [data]) for name, data in members.items()], _key_bytes(key)
        ).encode()
    with _atomic_open(path, "wb") as file:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)


def _final_classifier(estimator):
    """Return the classifier of a supported estimator, else say what is wrong."""
    if type(estimator) is PneumoniaCNNClassifier:
        return estimator
    supported = (
        "a model file holds a PneumoniaCNNClassifier, or a Pipeline of ImageLoader "
        "steps ending in one"
    )
    if not isinstance(estimator, Pipeline):
        raise ModelFileError(
            f"Unsupported estimator: {supported}; got a {type(estimator).__name__}."
        )
    *loaders, (last_name, classifier) = estimator.steps
    if type(classifier) is not PneumoniaCNNClassifier:
        raise ModelFileError(
            f"Unsupported pipeline: {supported}, but its last step {last_name!r} is "
            f"{classifier!r}."
        )
    for name, step in loaders:
        if type(step) is not ImageLoader:
            raise ModelFileError(
                f"Unsupported pipeline: {supported}, but its step {name!r} is {step!r}."
            )
    return classifier


def _describe_estimator(estimator):
    """The classes and parameters that rebuild ``estimator``, as JSON values."""
    if isinstance(estimator, Pipeline):
        params = _saved_params(estimator)
        del params["steps"]
        return {
            "class": class_name(Pipeline),
            "params": _params_to_json(params, prefix=""),
            "steps": [
                {"name": name, **_describe_step_params(step, prefix=f"{name}__")}
                for name, step in estimator.steps
            ],
        }
    return _describe_step_params(estimator, prefix="")


def _describe_step_params(step, prefix):
    return {
        "class": class_name(type(step)),
        "params": _params_to_json(_saved_params(step), prefix),
    }


def _saved_params(estimator):
    params = estimator.get_params(deep=False)
    for name in _UNSAVED_PARAMS & params.keys():
        params[name] = None
    return params


def _params_to_json(params, prefix):
    return {name: _to_json(value, prefix + name) for name, value in params.items()}


def _to_json(value, name):
    """Encode ``value`` for JSON, tagging what JSON cannot tell apart.

    Tuples, dicts (whose keys may be numbers) and non-finite floats become
    one-key objects, so that every JSON object in the output is such a tag.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and value.dtype.kind in "biufUO"
    ):
        return {
            "ndarray": {
                "dtype": value.dtype.str,
                "values": [_to_json(item, name) for item in value.tolist()],
            }
        }
    if isinstance(value, np.ndarray) and value.ndim > 1 and value.dtype.kind == "f":
        # A matrix (the input check's precision) as its bytes: compact and exact.
        return {
            "ndarray": {
                "dtype": value.dtype.str,
                "shape": list(value.shape),
                "base64": base64.b64encode(
                    np.ascontiguousarray(value).tobytes()
                ).decode("ascii"),
            }
        }
    if isinstance(value, list):
        return [_to_json(item, name) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [_to_json(item, name) for item in value]}
    if isinstance(value, dict):
        return {
            "dict": [[_to_json(k, name), _to_json(v, name)] for k, v in value.items()]
        }
    raise ModelFileError(
        f"Cannot save parameter {name!r} = {value!r}: a model file stores only None, "
        "booleans, numbers, strings, and lists, tuples and dicts of them. Set it to "
        "such a value with set_params before saving (for random_state, an int or "
        "None)."
    )


def _fitted_state(classifier):
    """The classifier's fitted attributes, as it names them, but for the network."""
    return {
        name: _to_json(value, name)
        for name, value in classifier.get_fitted_state().items()
        if name != "model_"
    }


def _keras_model_bytes(model):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, _MODEL)
        model.save(path)
        return path.read_bytes()


def _base64(data):
    return base64.b64encode(data).decode("ascii")
