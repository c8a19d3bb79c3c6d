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

import collections
import errno
import hashlib
import hmac
import io
import json
import math
import os
import shutil
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
from packaging.version import InvalidVersion, Version
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._compat import validate_parameters
from ._deprecation import made_private
from ._utils import atomic_open as _atomic_open
from .classifier import PneumoniaCNNClassifier
from .exceptions import ModelFileError
from .preprocessing import ImageLoader

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "load_model",
    "read_model_card",
    "save_model",
]

FORMAT_NAME = "pneumoclf-model"
FORMAT_VERSION = "2.2"
"""Version of the file format, ``"major.minor"``.

Files of the same major version are read; a new minor version only adds entries.
Version 2.0 stores the classifier's fitted attributes under their own names; 2.1
adds the optional ``signature.hmac`` member; 2.2 the optional ``model_card.md``
member and the ``validation_report_`` attribute. Files of version 1.x are still
read.
"""

# Major versions this pneumoclf reads.
_READABLE_MAJORS = ("1", "2")

_METADATA = "metadata.json"
_MODEL = "model.keras"
_MODEL_CARD = "model_card.md"
_SIGNATURE = "signature.hmac"
# Far above any real metadata (a training history of thousands of epochs is a
# few hundred kilobytes); refuses a compressed bomb before it is expanded.
_MAX_METADATA_BYTES = 4 * 1024**2
# Each JSON array or object costs about a hundred bytes of memory: real metadata
# holds a few hundred.
_MAX_METADATA_CONTAINERS = 100_000
# Trained weights hardly compress (deflate saves about a tenth), so a large
# member that expands far beyond its stored size is a decompression bomb; small
# members may compress well.
_MAX_EXPANSION_RATIO = 8
_MIN_CHECKED_EXPANSION_BYTES = 16 * 1024**2
_ENCRYPTED = 0x1
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# Inside model.keras, only the weights are read; the network is rebuilt.
_KERAS_WEIGHTS = "model.weights.h5"
# The weights file holds the float32 weights, at most two optimiser slots per
# weight (Adam's moments) and HDF5's bookkeeping.
_MAX_WEIGHT_FILE_COPIES = 4
_WEIGHT_FILE_OVERHEAD = 1024**2
# Bytes of one label of classes_: far above any real label, far below a memory bomb.
_MAX_ARRAY_ITEM_BYTES = 4096

# The only classes a model file may name: nothing else is ever instantiated.
_CLASSES = {
    "sklearn.pipeline.Pipeline": Pipeline,
    "pneumoclf.ImageLoader": ImageLoader,
    "pneumoclf.PneumoniaCNNClassifier": PneumoniaCNNClassifier,
}
_CLASS_NAMES = {cls: name for name, cls in _CLASSES.items()}

# Stored as None: callbacks act only while training and JSON cannot hold them; a
# pipeline's cache folder belongs to one machine, and could hold pickles.
_UNSAVED_PARAMS = frozenset({"callbacks", "memory"})


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


def _key_bytes(key):
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes) or not key:
        raise TypeError(f"key must be a non-empty str or bytes, got {key!r}")
    return key


def _sign(members, key):
    """HMAC-SHA256 over the names and SHA-256 digests of ``(name, chunks)`` pairs.

    Names are length-prefixed and digests have a fixed size, so that no two
    different sets of members give the same message.
    """
    signature = hmac.new(key, digestmod=hashlib.sha256)
    for name, chunks in sorted(members, key=lambda member: member[0]):
        content = hashlib.sha256()
        for chunk in chunks:
            content.update(chunk)
        encoded = name.encode()
        signature.update(len(encoded).to_bytes(8, "big") + encoded + content.digest())
    return signature.hexdigest()


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
            "class": _CLASS_NAMES[Pipeline],
            "params": _params_to_json(params, prefix=""),
            "steps": [
                {"name": name, **_describe_step_params(step, prefix=f"{name}__")}
                for name, step in estimator.steps
            ],
        }
    return _describe_step_params(estimator, prefix="")


def _describe_step_params(step, prefix):
    return {
        "class": _CLASS_NAMES[type(step)],
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


def load_model(path, *, key=None):
    """Load a model saved by :func:`save_model`, ready to predict.

    Nothing in the file is executed, and nothing in it decides how much memory
    or disk is spent: the metadata is read with :mod:`json` only, the estimator
    classes come from a fixed list and take only their own parameters, each
    validated, and the network is rebuilt from the classifier's parameters
    with :func:`~pneumoclf.architecture.build_cnn`; only its weights are read
    from the file, after their size has been checked against that architecture.
    The loaded estimator predicts exactly as the saved one did, and can be
    refitted like any other.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.
    key : str, bytes or None, default=None
        The key the file was signed with (``save_model(..., key=...)``). With a
        key, a file that is unsigned, signed with another key, or altered in any
        byte since it was signed is refused before anything in it is read.
        Without one, the signature of a signed file is not checked.

    Returns
    -------
    estimator : PneumoniaCNNClassifier or Pipeline
        The fitted estimator, of the kind that was saved, with the same
        parameters (except ``callbacks`` and a pipeline's ``memory``, which are
        ``None``) and the fitted attributes ``classes_``, ``model_``,
        ``image_shape_``, ``n_features_in_``, ``threshold_``, ``history_`` and
        ``n_epochs_``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    ModelFileError
        If ``path`` is not a pneumoclf model file (a pipe or a device is
        refused before it is opened), was written in an incompatible format
        version, is damaged (its checksum does not match), is malformed in any
        way (duplicate or encrypted members, an unknown compression method,
        numbers out of range, unknown parameters or parameter values the
        estimators refuse, metadata that disagrees with itself or with the
        network, weights that are not finite), would expand to an implausible
        size (a decompression bomb), or, with a ``key``, is not signed with that
        key. The message names the file.

    Warns
    -----
    UserWarning
        If the file was written by a newer version of pneumoclf than the one
        installed: it is loaded, but may predict slightly differently.
    """
    path = Path(path)
    metadata, model_bytes, card_bytes = _read_archive(path, key)
    _check_format(metadata, path)
    _check_checksum(metadata, model_bytes, path)
    _check_card_checksum(metadata, card_bytes, path)
    try:
        estimator = _rebuild_estimator(metadata["estimator"])
        fitted = _decode_fitted_state(metadata)
        classifier = _final_classifier(estimator)
        n_weights = classifier.count_network_weights(fitted["image_shape_"])
        _check_loaders_fit(estimator, fitted["image_shape_"])
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its metadata cannot "
            f"rebuild the estimator ({type(error).__name__}: {error})."
        ) from error
    network = _load_network(
        model_bytes, classifier, fitted["image_shape_"], n_weights, path
    )
    try:
        classifier.set_fitted_state({**fitted, "model_": network})
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


def _read_archive(path, key):
    """Return the parsed metadata, the model bytes and the card bytes (or None)."""
    _check_regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive, path, "the archive")
            if key is not None:
                _check_signature(archive, members, key, path)
            missing = [name for name in (_METADATA, _MODEL) if name not in members]
            if missing:
                raise ModelFileError(
                    f"{path} is not a pneumoclf model file: the archive lacks "
                    f"{' and '.join(missing)}."
                )
            if members[_METADATA].file_size > _MAX_METADATA_BYTES:
                raise ModelFileError(
                    f"{path} is not a pneumoclf model file: its {_METADATA} is "
                    "implausibly large."
                )
            _check_expansion(members[_MODEL], path)
            metadata_bytes = archive.read(_METADATA)
            model_bytes = archive.read(_MODEL)
            card_bytes = _read_card(archive, members, path)
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):
            raise _corrupt(path, str(error)) from error
        raise ModelFileError(
            f"{path} is not a pneumoclf model file (not a valid zip archive: {error})."
        ) from error
    metadata = _parse_metadata(metadata_bytes, path)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {_METADATA} does not "
            f"declare the format {FORMAT_NAME!r}."
        )
    return metadata, model_bytes, card_bytes


def _read_card(archive, members, path):
    if _MODEL_CARD not in members:
        return None
    if members[_MODEL_CARD].file_size > _MAX_METADATA_BYTES:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its {_MODEL_CARD} is "
            "implausibly large."
        )
    return archive.read(_MODEL_CARD)


def _checked_members(archive, path, where):
    """The members of ``archive`` by name, refusing what no model file holds."""
    infos = archive.infolist()
    repeated = sorted(
        name
        for name, count in collections.Counter(i.filename for i in infos).items()
        if count > 1
    )
    if repeated:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: {where} holds "
            f"{', '.join(repeated)} more than once."
        )
    for info in infos:
        if info.flag_bits & _ENCRYPTED:
            raise ModelFileError(
                f"{path} is not a valid pneumoclf model file: {info.filename} in "
                f"{where} is encrypted."
            )
        if info.compress_type not in _COMPRESSIONS:
            raise ModelFileError(
                f"{path} is not a valid pneumoclf model file: {info.filename} in "
                f"{where} uses compression method {info.compress_type}; model "
                "files are stored or deflated only."
            )
    return {info.filename: info for info in infos}


def _check_signature(archive, members, key, path):
    """Refuse, before reading anything else, a file that the key did not sign."""
    key = _key_bytes(key)
    if _SIGNATURE not in members:
        raise ModelFileError(
            f"{path} is not signed, so it is refused: a key was given, and only "
            "files saved with save_model(..., key=...) under that key are loaded."
        )
    for info in members.values():
        _check_expansion(info, path)
    signature = archive.read(_SIGNATURE)[: 2 * hashlib.sha256().digest_size]
    signed = [(name, _chunks(archive, name)) for name in members if name != _SIGNATURE]
    if not hmac.compare_digest(_sign(signed, key).encode(), signature):
        raise ModelFileError(
            f"{path} has been altered since it was signed, or was signed with "
            "another key: do not use it."
        )


def _chunks(archive, name, size=1024**2):
    with archive.open(name) as member:
        while chunk := member.read(size):
            yield chunk


def _parse_metadata(metadata_bytes, path):
    """Parse the metadata JSON, refusing what would cost far more than its size."""
    n_containers = metadata_bytes.count(b"[") + metadata_bytes.count(b"{")
    try:
        if n_containers > _MAX_METADATA_CONTAINERS:
            raise ValueError(
                f"{n_containers} arrays and objects, far more than any model needs"
            )
        return json.loads(
            metadata_bytes,
            parse_float=_finite_float,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError) as error:
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {_METADATA} is not valid "
            f"JSON ({error})."
        ) from error


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


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


def _check_card_checksum(metadata, card_bytes, path):
    recorded = metadata.get("model_card_sha256")
    if card_bytes is None and recorded is None:
        return
    if card_bytes is None:
        raise _corrupt(path, f"its metadata names a {_MODEL_CARD} the archive lacks")
    if hashlib.sha256(card_bytes).hexdigest() != recorded:
        raise _corrupt(path, f"the SHA-256 checksum of {_MODEL_CARD} does not match")


def read_model_card(path, *, key=None):
    """The model card a model file carries, checked as :func:`load_model` checks.

    Nothing is rebuilt and TensorFlow runs nothing: the archive, its format, its
    checksums and, with a ``key``, its signature are checked, then the card is
    returned.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.
    key : str, bytes or None, default=None
        As for :func:`load_model`.

    Returns
    -------
    str or None
        The Markdown given to ``save_model(..., model_card=...)``; None when the
        file carries none (files of format 2.1 and older never do).

    Raises
    ------
    ModelFileError
        As :func:`load_model`, for a file that is not a valid model file, is
        damaged, or is not signed with ``key``; also for a card that is not
        UTF-8.
    """
    path = Path(path)
    metadata, model_bytes, card_bytes = _read_archive(path, key)
    _check_format(metadata, path)
    _check_checksum(metadata, model_bytes, path)
    _check_card_checksum(metadata, card_bytes, path)
    if card_bytes is None:
        return None
    try:
        return card_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its {_MODEL_CARD} is "
            f"not UTF-8 ({error})."
        ) from None


def _rebuild_estimator(description):
    """Instantiate the described estimator from the allowed classes only."""
    cls = _allowed_class(description["class"])
    params = _params_from_json(description["params"])
    if cls is Pipeline:
        steps = [
            (step["name"], _rebuild_estimator(step)) for step in description["steps"]
        ]
        estimator = Pipeline(steps)
    else:
        estimator = cls()
    _set_checked_params(estimator, params)
    if cls is Pipeline:
        _final_classifier(estimator)
    return estimator


def _set_checked_params(estimator, params):
    """Set only the estimator's own parameters, each checked by its constraints."""
    own = estimator.get_params(deep=False).keys() - {"steps"}
    unknown = sorted(params.keys() - own)
    if unknown:
        raise ValueError(
            f"{type(estimator).__name__} has no parameters {unknown}; a model file "
            "may set only an estimator's own parameters"
        )
    for name in sorted(_UNSAVED_PARAMS & params.keys()):
        if params[name] is not None:
            raise ValueError(
                f"a model file stores {type(estimator).__name__}'s {name!r} as "
                f"None, got {params[name]!r}"
            )
    estimator.set_params(**params)
    validate_parameters(estimator)


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


# What a file from before calibration means: no calibration (the prevalence is
# then never used: a deployment prevalence needs a calibration), and no record of
# the validation part (before format 2.2).
_UNCALIBRATED = {
    "calibration_": None,
    "training_prevalence_": 0.5,
    "validation_report_": None,
}


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


def _check_loaders_fit(estimator, image_shape):
    """Refuse a pipeline whose loaders make images the classifier cannot take."""
    if not isinstance(estimator, Pipeline):
        return
    *loaders, _ = estimator.steps
    for name, loader in loaders:
        if loader.image_shape != image_shape:
            raise ValueError(
                f"the step {name!r} makes images of shape {loader.image_shape}, but "
                f"the classifier takes image_shape_ {image_shape}"
            )


def _load_network(model_bytes, classifier, image_shape, n_weights, path):
    """Rebuild the network from the classifier's parameters and load its weights.

    ``n_weights`` is the number of weights those parameters give it.
    """
    with tempfile.TemporaryDirectory() as folder:
        weights_path = _extract_weights(model_bytes, n_weights, Path(folder), path)
        _check_weight_datasets(weights_path, path)
        network = classifier.new_network(image_shape)
        network.optimizer.build(network.trainable_variables)
        # A weight the file does not set stays NaN, and is refused below.
        network.set_weights([np.full_like(w, np.nan) for w in network.get_weights()])
        try:
            with warnings.catch_warnings():
                # Keras warns before it raises for the same mismatch.
                warnings.filterwarnings("ignore", category=UserWarning, module="keras")
                network.load_weights(weights_path)
        except Exception as error:
            raise ModelFileError(
                f"{path} is not a valid pneumoclf model file: its weights do not fit "
                f"the network its parameters describe ({type(error).__name__}: "
                f"{error})."
            ) from error
    if not all(np.isfinite(weight).all() for weight in network.get_weights()):
        raise ModelFileError(
            f"{path} holds weights that are missing or not finite numbers (NaN or "
            "infinity): its network cannot give meaningful probabilities; do not "
            "use it."
        )
    return network


def _extract_weights(model_bytes, n_weights, folder, path):
    """Copy the weights file of the Keras archive into ``folder``, once checked."""
    weights_path = folder / _KERAS_WEIGHTS
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as inner:
            members = _checked_members(inner, path, _MODEL)
            if _KERAS_WEIGHTS not in members:
                raise ModelFileError(
                    f"{path} is not a valid pneumoclf model file: its {_MODEL} "
                    f"lacks {_KERAS_WEIGHTS}."
                )
            _check_expansion(members[_KERAS_WEIGHTS], path)
            _check_weight_file_size(members[_KERAS_WEIGHTS], n_weights, path)
            with inner.open(_KERAS_WEIGHTS) as source, weights_path.open("wb") as copy:
                shutil.copyfileobj(source, copy)
    except (zipfile.BadZipFile, ValueError) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its {_MODEL} is not a "
            f"Keras model archive ({error})."
        ) from error
    return weights_path


def _check_weight_file_size(member, n_weights, path):
    """The weights file must hold the architecture's weights, and little else."""
    needed = 4 * n_weights
    ceiling = _MAX_WEIGHT_FILE_COPIES * needed + _WEIGHT_FILE_OVERHEAD
    if not needed <= member.file_size <= ceiling:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its parameters describe a "
            f"network of {n_weights} weights ({needed} bytes), but its "
            f"{_KERAS_WEIGHTS} holds {member.file_size} bytes."
        )


def _check_weight_datasets(weights_path, path):
    """Refuse HDF5 content that expands beyond the file or reads other files."""
    n_bytes = 0
    problems = []

    def visit(name, link):
        nonlocal n_bytes
        if not isinstance(link, h5py.HardLink):
            problems.append(f"{name} is a link to elsewhere")
            return
        item = file[name]
        if isinstance(item, h5py.Dataset):
            if item.external or item.is_virtual:
                problems.append(f"{name} stores its data in other files")
            elif item.dtype.kind not in "biuf":
                problems.append(f"{name} is not numeric")
            n_bytes += item.nbytes

    try:
        with h5py.File(weights_path, "r") as file:
            file.visititems_links(visit)
    except OSError as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its {_KERAS_WEIGHTS} is "
            f"not an HDF5 file ({error})."
        ) from error
    if n_bytes > weights_path.stat().st_size:
        problems.append(f"its arrays would expand to {n_bytes} bytes")
    if problems:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: in its {_KERAS_WEIGHTS}, "
            f"{'; '.join(problems)}."
        )


def __getattr__(name):
    return made_private(__name__, name, {"atomic_open": _atomic_open})
