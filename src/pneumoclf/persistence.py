"""Save fitted models to one file that is safe to open, and load them back.

:func:`save_model` writes a fitted :class:`~pneumoclf.PneumoniaCNNClassifier`, or a
fitted :class:`~sklearn.pipeline.Pipeline` of :class:`~pneumoclf.ImageLoader` steps
ending in one, to a single ``.pneumoclf`` file; :func:`load_model` reads it back,
ready to predict, without training.

Pickle and joblib keep working and remain the standard scikit-learn route, but
unpickling runs code chosen by whoever wrote the file: only load pickles you trust.
A ``.pneumoclf`` file holds only JSON and a Keras model in the native ``.keras``
format, loaded in Keras' safe mode, so opening one received from someone else runs
none of its content. It also records the versions that wrote it and a checksum, so
that a damaged or incompatible file is refused with a clear message instead of
failing later.

The file is a zip archive of two members:

``metadata.json``
    The format name and version, the pneumoclf and Keras versions, the estimator's
    structure (pipeline steps, their classes and ``get_params()``), the fitted
    state the classifier needs to predict, and the SHA-256 checksum of the model.
``model.keras``
    The trained network, as written by ``keras.Model.save``.
"""

import errno
import hashlib
import json
import math
import os
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
from packaging.version import InvalidVersion, Version
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._utils import atomic_open
from .classifier import PneumoniaCNNClassifier
from .preprocessing import ImageLoader

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "atomic_open",
    "load_model",
    "save_model",
]

FORMAT_NAME = "pneumoclf-model"
FORMAT_VERSION = "2.0"
"""Version of the file format, ``"major.minor"``.

Files of the same major version are read; a new minor version only adds entries.
Version 2.0 stores the classifier's fitted attributes under their own names; files
of version 1.x are still read.
"""

# Major versions this pneumoclf reads.
_READABLE_MAJORS = ("1", "2")

_METADATA = "metadata.json"
_MODEL = "model.keras"
# Far above any real metadata; refuses a compressed bomb before it is expanded.
_MAX_METADATA_BYTES = 64 * 1024**2
# Trained weights hardly compress, so a large member that expands far beyond its
# stored size is a decompression bomb; small members may compress well.
_MAX_EXPANSION_RATIO = 50
_MIN_CHECKED_EXPANSION_BYTES = 16 * 1024**2
# Bytes of one label of classes_: far above any real label, far below a memory bomb.
_MAX_ARRAY_ITEM_BYTES = 4096

# The only classes a model file may name: nothing else is ever instantiated.
_CLASSES = {
    "sklearn.pipeline.Pipeline": Pipeline,
    "pneumoclf.ImageLoader": ImageLoader,
    "pneumoclf.PneumoniaCNNClassifier": PneumoniaCNNClassifier,
}
_CLASS_NAMES = {cls: name for name, cls in _CLASSES.items()}

# Training-time only, and Keras objects that JSON cannot hold.
_UNSAVED_PARAMS = frozenset({"callbacks"})


class ModelFileError(ValueError):
    """Raised when a model cannot be saved to, or loaded from, a model file.

    The message names the file or the parameter at fault: a file that is not a
    pneumoclf model file, one of an incompatible format version, a corrupt or
    tampered one, or an estimator that a model file cannot hold.
    """


# ---------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------


def save_model(estimator, path):
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
    metadata_text = json.dumps(metadata, indent=2, allow_nan=False)
    with atomic_open(path, "wb") as file:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(_METADATA, metadata_text)
            archive.writestr(_MODEL, model_bytes)


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
        params = estimator.get_params(deep=False)
        del params["steps"]
        return {
            "class": _CLASS_NAMES[Pipeline],
            "params": _params_to_json(params, prefix=""),
            "steps": [
                {"name": name, **_describe_step_params(step, prefix=f"{name}__")}
                for name, step in estimator.steps
            ],
        }
    return _describe_step_params(estimator, prefix="")


def _describe_step_params(step, prefix):
    params = step.get_params(deep=False)
    for name in _UNSAVED_PARAMS & params.keys():
        params[name] = None
    return {
        "class": _CLASS_NAMES[type(step)],
        "params": _params_to_json(params, prefix),
    }


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


def _pneumoclf_version():
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------


def load_model(path):
    """Load a model saved by :func:`save_model`, ready to predict.

    Nothing in the file is executed: the metadata is read with :mod:`json`
    only, the estimator classes come from a fixed list, and the network is read
    by ``keras.saving.load_model`` in safe mode, which refuses any layer that
    would run stored code. The loaded estimator predicts exactly as the saved one
    did, and can be refitted like any other.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.

    Returns
    -------
    estimator : PneumoniaCNNClassifier or Pipeline
        The fitted estimator, of the kind that was saved, with the same
        parameters (except ``callbacks``, which is ``None``) and the fitted
        attributes ``classes_``, ``model_``, ``image_shape_``,
        ``n_features_in_``, ``threshold_``, ``history_`` and ``n_epochs_``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    ModelFileError
        If ``path`` is not a pneumoclf model file (a pipe or a device is
        refused before it is opened), was written in an
        incompatible format version, is corrupt or has been tampered with (its
        checksum does not match, or its metadata disagrees with its network),
        would expand to an implausible size (a decompression bomb), or holds a
        network Keras refuses to load.

    Warns
    -----
    UserWarning
        If the file was written by a newer version of pneumoclf than the one
        installed: it is loaded, but may predict slightly differently.
    """
    path = Path(path)
    metadata, model_bytes = _read_archive(path)
    _check_format(metadata, path)
    _check_checksum(metadata, model_bytes, path)
    try:
        estimator = _rebuild_estimator(metadata["estimator"])
        fitted = _decode_fitted_state(metadata)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its metadata cannot "
            f"rebuild the estimator ({type(error).__name__}: {error})."
        ) from error
    classifier = (
        estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    )
    model = _load_keras_model(model_bytes, path)
    try:
        classifier.set_fitted_state({**fitted, "model_": model})
    except ValueError as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its metadata disagrees "
            f"with itself or with its network ({error})"
        ) from error
    return estimator


def _check_regular_file(path):
    """Refuse folders, pipes and devices before opening: reading a pipe may block."""
    mode = os.stat(os.fspath(path)).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(mode):
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: it is not a regular file."
        )


def _read_archive(path):
    """Return the parsed metadata and the model bytes of a model file."""
    _check_regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            missing = [name for name in (_METADATA, _MODEL) if name not in members]
            if missing:
                raise ModelFileError(
                    f"{path} is not a pneumoclf model file: the archive lacks "
                    f"{' and '.join(missing)}."
                )
            if archive.getinfo(_METADATA).file_size > _MAX_METADATA_BYTES:
                raise ModelFileError(
                    f"{path} is not a pneumoclf model file: its {_METADATA} is "
                    "implausibly large."
                )
            _check_expansion(archive.getinfo(_MODEL), path)
            metadata_bytes = archive.read(_METADATA)
            model_bytes = archive.read(_MODEL)
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):
            raise _corrupt(path, str(error)) from error
        raise ModelFileError(
            f"{path} is not a pneumoclf model file (not a valid zip archive: {error})."
        ) from error
    try:
        metadata = json.loads(metadata_bytes)
    except (ValueError, RecursionError) as error:
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {_METADATA} is not valid "
            f"JSON ({error})."
        ) from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {_METADATA} does not "
            f"declare the format {FORMAT_NAME!r}."
        )
    return metadata, model_bytes


def _check_expansion(member, path):
    if (
        member.file_size > _MIN_CHECKED_EXPANSION_BYTES
        and member.file_size > _MAX_EXPANSION_RATIO * member.compress_size
    ):
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {member.filename} would "
            f"expand from {member.compress_size} to {member.file_size} bytes, "
            "which no trained network does (a decompression bomb?)."
        )


def _corrupt(path, reason):
    return ModelFileError(
        f"{path} is corrupt or has been tampered with ({reason}); do not use it: "
        "save the model again or get an intact copy."
    )


def _check_format(metadata, path):
    """Refuse another major format version; warn about a newer pneumoclf."""
    file_version = str(metadata.get("format_version"))
    if file_version.split(".")[0] not in _READABLE_MAJORS:
        readable = " and ".join(f"{major}.x" for major in _READABLE_MAJORS)
        raise ModelFileError(
            f"{path} is incompatible with this pneumoclf: it is in model file format "
            f"version {file_version}, while pneumoclf {_pneumoclf_version()} reads "
            f"format versions {readable}. Load it with the "
            "pneumoclf version that saved it "
            f"({metadata.get('pneumoclf_version', 'unknown')})."
        )
    saved_with = str(metadata.get("pneumoclf_version"))
    try:
        is_newer = Version(saved_with) > Version(_pneumoclf_version())
    except InvalidVersion as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its pneumoclf version "
            f"{saved_with!r} is not a version number."
        ) from error
    if is_newer:
        warnings.warn(
            f"{path} was saved by pneumoclf {saved_with}, newer than the installed "
            f"{_pneumoclf_version()}; it is loaded, but upgrade pneumoclf if its "
            "predictions matter.",
            UserWarning,
            stacklevel=3,
        )


def _check_checksum(metadata, model_bytes, path):
    if hashlib.sha256(model_bytes).hexdigest() != metadata.get("model_sha256"):
        raise _corrupt(path, f"the SHA-256 checksum of {_MODEL} does not match")


def _rebuild_estimator(description):
    """Instantiate the described estimator from the allowed classes only."""
    cls = _allowed_class(description["class"])
    params = _params_from_json(description["params"])
    if cls is not Pipeline:
        return cls().set_params(**params)
    steps = [(step["name"], _rebuild_estimator(step)) for step in description["steps"]]
    estimator = Pipeline(steps, **params)
    _final_classifier(estimator)
    return estimator


def _allowed_class(name):
    try:
        return _CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown class {name!r}; expected one of {sorted(_CLASSES)}"
        ) from None


def _params_from_json(params):
    if not isinstance(params, dict):
        raise TypeError(f"parameters must be a JSON object, got {params!r}")
    return {name: _from_json(value) for name, value in params.items()}


def _from_json(value):
    """Invert :func:`_to_json`."""
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError(f"unexpected JSON object {value!r}")
    ((tag, content),) = value.items()
    if tag == "tuple":
        return tuple(_from_json(item) for item in content)
    if tag == "dict":
        return {_from_json(k): _from_json(v) for k, v in content}
    if tag == "float" and content in ("nan", "inf", "-inf"):
        return float(content)
    if tag == "ndarray":
        return _array_from_json(content)
    raise ValueError(f"unexpected JSON object {value!r}")


def _array_from_json(content):
    dtype = np.dtype(content["dtype"])
    if dtype.kind not in "biufUO" or dtype.itemsize > _MAX_ARRAY_ITEM_BYTES:
        raise ValueError(f"unsupported array dtype {dtype}")
    values = [_from_json(item) for item in content["values"]]
    if dtype.kind == "O" and not all(isinstance(item, str) for item in values):
        raise ValueError("an object array may hold strings only")
    array = np.array(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {array.shape}")
    return array


def _decode_fitted_state(metadata):
    """The fitted attributes of the classifier, by name, from any 1.x or 2.x file."""
    if metadata["format_version"].startswith("1."):
        fitted = _fitted_state_of_format_1(metadata)
    else:
        fitted = metadata["fitted"]
        if not isinstance(fitted, dict):
            raise TypeError(f"fitted must be a JSON object, got {fitted!r}")
        fitted = {str(name): _from_json(value) for name, value in fitted.items()}
    return {**_UNCALIBRATED, **fitted}


# What a file from before calibration means: no calibration. The prevalence is
# then never used (a deployment prevalence needs a calibration).
_UNCALIBRATED = {"calibration_": None, "training_prevalence_": 0.5}


def _fitted_state_of_format_1(metadata):
    fitted = metadata["fitted"]
    classifier_params = metadata["estimator"]
    if "steps" in classifier_params:
        classifier_params = classifier_params["steps"][-1]
    is_auto = classifier_params["params"].get("threshold") == "auto"
    return {
        "classes_": _array_from_json(fitted["classes"]),
        "image_shape_": tuple(fitted["image_shape"]),
        "n_features_in_": fitted["n_features_in"],
        "chosen_threshold_": float(fitted["threshold"]) if is_auto else None,
        "history_": _from_json(fitted["history"]),
        "n_epochs_": fitted["n_epochs"],
    }


def _load_keras_model(model_bytes, path):
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder, _MODEL)
        model_path.write_bytes(model_bytes)
        try:
            return keras.saving.load_model(model_path, safe_mode=True)
        except Exception as error:
            # The checksum matched, so the network itself is unreadable or unsafe.
            raise ModelFileError(
                f"{path} holds a Keras model that cannot be loaded safely "
                f"({type(error).__name__}: {error})."
            ) from error
