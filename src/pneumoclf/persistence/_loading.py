"""Loading a model file: the estimator, its fitted state and its network's weights."""

import base64
import io
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
from sklearn.pipeline import Pipeline

from .._compat import validate_parameters
from ..exceptions import ModelFileError
from ._archive import (
    _check_card_checksum,
    _check_checksum,
    _check_expansion,
    _check_format,
    _checked_members,
    _read_archive,
)
from ._format import (
    _KERAS_WEIGHTS,
    _MAX_ARRAY_ITEM_BYTES,
    _MAX_WEIGHT_FILE_COPIES,
    _MODEL,
    _UNSAVED_PARAMS,
    _WEIGHT_FILE_OVERHEAD,
    model_classes,
)
from ._saving import _final_classifier

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
    classes = model_classes()
    try:
        return classes[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown class {name!r}; expected one of {sorted(classes)}"
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
    if "base64" in content:
        return _matrix_from_json(content, dtype)
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


def _matrix_from_json(content, dtype):
    shape = content["shape"]
    if dtype.kind != "f" or not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(side, int) and side > 0 for side in shape)
    ):
        raise ValueError(f"unsupported matrix of dtype {dtype} and shape {shape!r}")
    data = base64.b64decode(content["base64"], validate=True)
    if len(data) != shape[0] * shape[1] * dtype.itemsize:
        raise ValueError(f"a matrix of shape {shape} holds {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


# What a file from before calibration means: no calibration (the prevalence is
# then never used: a deployment prevalence needs a calibration), and no record of
# the validation part (before format 2.2).
_UNCALIBRATED = {
    "calibration_": None,
    "training_prevalence_": 0.5,
    "validation_report_": None,
    "input_reference_": None,
    "population_reference_": None,
    "adaptations_": (),
    "training_digests_": None,
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
