"""ONNX export of a fitted model, and prediction from it without TensorFlow.

:func:`export_onnx` writes the fitted network as an ONNX file that also carries
everything ``predict`` needs around it: the loader's image size, resize rule and
normalisation, the calibration, the prevalence, the decision threshold, the class
names and the input check's reference, in the file's metadata; its second output
is the network's penultimate features, for the input check.
:class:`OnnxPneumoniaModel` reads such a file with ONNX Runtime and predicts
exactly as the pipeline did, from image paths or arrays, with the same image
decoding; it imports neither TensorFlow nor Keras.

Needs the ``onnx`` extra: ``pip install "pneumoclf[onnx]"`` (tf2onnx and onnx to
export, ONNX Runtime to predict).
"""

import base64
import contextlib
import functools
import json
import logging
import math
import os
import stat
import tempfile
import warnings

import numpy as np

from . import validity
from ._calibration import calibrated, with_prevalence
from ._utils import atomic_open, is_pneumonia
from .exceptions import ImageLoadError, InputCheckWarning
from .preprocessing import check_paths, paths_of, read_images

__all__ = ["FORMAT", "OnnxPneumoniaModel", "export_onnx"]

#: The value of the ``pneumoclf_format`` metadata entry this version writes.
FORMAT = "pneumoclf-onnx-1"

# Metadata entries every export carries, each a JSON text.
_METADATA_KEYS = (
    "pneumoclf_version",
    "classes",
    "threshold",
    "calibration",
    "training_prevalence",
    "prevalence",
    "image_size",
    "resize",
    "normalize",
)

_EXTRA = 'pip install "pneumoclf[onnx]"'


def export_onnx(estimator, path):
    """Write a fitted model as an ONNX file that predicts as it does.

    Parameters
    ----------
    estimator : Pipeline or PneumoniaCNNClassifier
        A fitted ``Pipeline([ImageLoader, PneumoniaCNNClassifier])``, as
        :func:`~pneumoclf.load_model` returns, or a fitted classifier alone (its
        images are then read as ``ImageLoader(image_size=<its input size>)``).
    path : str or os.PathLike
        Where to write the file (``.onnx``). Written atomically: a failure
        leaves no partial file.

    Returns
    -------
    path : str
        The file written.

    Raises
    ------
    ImportError
        If tf2onnx or onnx is missing (``pip install "pneumoclf[onnx]"``).
    ValueError
        If ``estimator`` is not such a fitted model.

    Notes
    -----
    The file's input is ``image``: float32 images of shape ``(n, height, width,
    1)`` in [0, 1], as :class:`~pneumoclf.ImageLoader` gives them; its output the
    network's sigmoid, before calibration. The metadata (``metadata_props``,
    JSON values) holds ``pneumoclf_format``, ``pneumoclf_version``, ``classes``,
    ``threshold`` (what ``predict`` applies), ``calibration`` (``[a, b]`` of
    ``sigmoid(a * logit(p) + b)``, or null), ``training_prevalence`` and
    ``prevalence`` (the move of the probabilities to a deployment prevalence, or
    null), and the loader's ``image_size``, ``resize`` and ``normalize``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from pneumoclf import PneumoniaCNNClassifier
    >>> from pneumoclf.export import OnnxPneumoniaModel, export_onnx
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 16, 16)).astype("float32")
    >>> y = np.array([0, 1] * 20)
    >>> clf = PneumoniaCNNClassifier(
    ...     n_conv_blocks=1, filters=4, dense_units=4, epochs=1, random_state=0
    ... ).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = export_onnx(clf, os.path.join(folder, "model.onnx"))
    ...     onnx_model = OnnxPneumoniaModel(path)
    >>> onnx_model.image_shape_
    (16, 16, 1)
    >>> bool(np.abs(onnx_model.predict_proba(X) - clf.predict_proba(X)).max() < 1e-5)
    True
    """
    onnx = _import("onnx")
    _import("tf2onnx")
    loader, classifier = _loader_and_classifier(estimator)
    from .architecture import inference_network

    network = inference_network(classifier.model_, with_features=True)
    network(np.zeros((1, *network.input_shape[1:]), dtype=np.float32))  # built
    metadata = {
        "pneumoclf_format": FORMAT,
        **{key: json.dumps(value) for key, value in _metadata(loader, classifier)},
    }
    # The converter's files go to the system's temporary folder, not beside the
    # output, where a killed export would leave them.
    with tempfile.TemporaryDirectory(prefix="pneumoclf-export-") as workdir:
        exported = os.path.join(workdir, "network.onnx")
        try:
            with warnings.catch_warnings(), _handlers_kept("tensorflow", "tf2onnx"):
                # Keras' bridge to tf2onnx probes a NumPy alias NumPy 2 removed.
                warnings.simplefilter("ignore", FutureWarning)
                network.export(exported, format="onnx", verbose=False)
            proto = onnx.load(exported)
        except OSError as error:
            raise OSError(
                error.errno,
                f"{error.strerror or error} (converting in {workdir})",
                os.fspath(path),
            ) from error
    onnx.helper.set_model_props(proto, metadata)
    with atomic_open(path, "wb") as file:
        file.write(proto.SerializeToString())
    return os.fspath(path)


@contextlib.contextmanager
def _handlers_kept(*names):
    """Undo the log handlers the converter attaches, to whatever stderr was then."""
    loggers = [logging.getLogger(name) for name in names]
    kept = [list(logger.handlers) for logger in loggers]
    try:
        yield
    finally:
        for logger, handlers in zip(loggers, kept, strict=True):
            logger.handlers[:] = handlers


def _metadata(loader, classifier):
    calibration = classifier.calibration_
    return [
        ("pneumoclf_version", _package_version()),
        ("classes", classifier.classes_.tolist()),
        ("threshold", float(classifier.threshold_)),
        ("calibration", None if calibration is None else list(calibration)),
        ("training_prevalence", float(classifier.training_prevalence_)),
        ("prevalence", classifier.prevalence),
        ("image_size", list(loader.image_shape[:2])),
        ("resize", loader.resize),
        ("normalize", loader.normalize),
        ("input_reference", _reference_to_json(classifier)),
    ]


def _reference_to_json(classifier):
    reference = getattr(classifier, "input_reference_", None)
    if reference is None:
        return None
    precision = np.ascontiguousarray(reference.precision, dtype=np.float32)
    return {
        "mean": reference.mean.tolist(),
        "precision_float32_base64": base64.b64encode(precision.tobytes()).decode(),
        "threshold": reference.threshold,
    }


def _reference_from_json(value):
    """The stored InputReference, or None (no feature check)."""
    if value is None:
        return None
    mean = np.asarray(value["mean"], dtype=np.float64)
    precision = np.frombuffer(
        base64.b64decode(value["precision_float32_base64"], validate=True),
        dtype=np.float32,
    ).reshape(len(mean), len(mean))
    return validity.InputReference(mean, precision, float(value["threshold"]))


def _package_version():
    from . import __version__

    return __version__


def _loader_and_classifier(estimator):
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from .classifier import PneumoniaCNNClassifier
    from .preprocessing import ImageLoader
    from .recipes import image_file_pipeline

    if isinstance(estimator, PneumoniaCNNClassifier):
        check_is_fitted(estimator)
        estimator = image_file_pipeline(estimator)
    steps = estimator.steps if isinstance(estimator, Pipeline) else []
    if len(steps) != 2 or not (
        isinstance(steps[0][1], ImageLoader)
        and isinstance(steps[1][1], PneumoniaCNNClassifier)
    ):
        raise ValueError(
            "export_onnx takes a fitted Pipeline([ImageLoader, "
            "PneumoniaCNNClassifier]) or a fitted PneumoniaCNNClassifier; got "
            f"{type(estimator).__name__}."
        )
    loader, classifier = steps[0][1], steps[1][1]
    check_is_fitted(classifier)
    return loader, classifier


def _import(name):
    try:
        return __import__(name)
    except ImportError as error:
        raise ImportError(
            f"ONNX export and prediction need {name}: {_EXTRA}."
        ) from error


# Images per run of the ONNX network.
_BATCH = 128
# Image files read at once: memory does not grow with the number of files.
_FILES_AT_ONCE = 512


class OnnxPneumoniaModel:
    """Predict from an ONNX file of :func:`export_onnx`, without TensorFlow.

    Takes what the fitted pipeline took, image paths or loaded images, reads
    image files with the same :class:`~pneumoclf.ImageLoader` settings, and
    gives the same ``predict_proba`` and ``predict``.

    Parameters
    ----------
    path : str or os.PathLike
        An ONNX file written by :func:`export_onnx`.
    n_threads : int or None, default=None
        Threads ONNX Runtime runs the network on, and the input check reads
        colours on; None lets each choose. The colour verdicts are cached as
        ``loader_.cache`` says.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The labels; ``classes_[1]`` is the pneumonia class.
    threshold_ : float
        The threshold ``predict`` applies.
    image_shape_ : tuple of int
        ``(height, width, 1)`` of the network's input.
    loader_ : ImageLoader
        Reads image paths as the exported pipeline did; made on first use, and
        used from then on (prediction alone needs no scikit-learn).
    metadata_ : dict
        The file's metadata, decoded.
    input_reference_ : InputReference or None
        The input check's feature test; None in exports from before it.

    Raises
    ------
    ValueError
        If the file is not a pneumoclf ONNX export, or its metadata is damaged.

    Examples
    --------
    >>> from pneumoclf.export import OnnxPneumoniaModel  # doctest: +SKIP
    >>> model = OnnxPneumoniaModel("model.onnx")  # doctest: +SKIP
    >>> model.predict_proba(["chest.jpeg"])[:, 1]  # doctest: +SKIP
    """

    def __init__(self, path, *, n_threads=None):
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = n_threads
        _check_regular_file(path)
        try:
            self._session = ort.InferenceSession(
                os.fspath(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise ValueError(
                f"{os.fspath(path)} is not a readable ONNX file ({error})."
            ) from None
        self.path = os.fspath(path)
        self.n_threads = n_threads
        self.metadata_ = _read_metadata(self._session, self.path)
        self.classes_ = np.asarray(self.metadata_["classes"])
        self.threshold_ = float(self.metadata_["threshold"])
        self.input_reference_ = _reference_from_json(
            self.metadata_.get("input_reference")
        )
        height, width = self.metadata_["image_size"]
        self.image_shape_ = (height, width, 1)
        _check_graph(self._session, self.image_shape_, self.input_reference_, self.path)
        self._input = self._session.get_inputs()[0].name

    @functools.cached_property
    def loader_(self):
        from .preprocessing import ImageLoader

        return ImageLoader(**self._reading())

    def _reading(self):
        """The exported loader's settings."""
        return {
            "image_size": self.image_shape_[:2],
            "resize": self.metadata_["resize"],
            "normalize": self.metadata_["normalize"],
        }

    def predict_proba(self, X):
        """Probabilities of the two classes.

        Parameters
        ----------
        X : sequence of image paths, or array of shape (n, h, w) or (n, h, w, 1)
            Image files, or images already loaded as the exported loader gives
            them (float32 in [0, 1]).

        Returns
        -------
        ndarray of shape (n, 2)
            Column 1 is the probability of pneumonia.
        """
        probabilities, results = self.predict_proba_and_check_inputs(X)
        refused = int(np.count_nonzero(results != validity.PASSED))
        if refused:
            warnings.warn(
                InputCheckWarning(
                    f"{refused} of {len(results)} images did not pass the input "
                    "check and should get no label; check_inputs says why."
                ),
                stacklevel=2,
            )
        return probabilities

    def predict_proba_and_check_inputs(self, X):
        """:meth:`predict_proba` and :meth:`check_inputs` from one run of the network.

        Parameters
        ----------
        X : sequence of image paths, or array of shape (n, h, w) or (n, h, w, 1)

        Returns
        -------
        probabilities : ndarray of shape (n, 2)
        checks : ndarray of shape (n,), dtype object
            ``"ok"`` or why an image may not be labelled; no warning is given.
        """
        scores, results = self._scores_and_checks_in_parts(X)
        pneumonia = with_prevalence(
            calibrated(scores, _calibration(self.metadata_)),
            trained=self.metadata_["training_prevalence"],
            deployed=self.metadata_["prevalence"],
        )
        return np.column_stack([1.0 - pneumonia, pneumonia]), results

    def _scores_and_checks(self, X):
        images, paths = self._images(X)
        scores, features = self._outputs(images)
        if not np.all(np.isfinite(scores)):
            raise ValueError(
                f"The network's output is NaN or infinite for some images: "
                f"{self.path} is damaged."
            )
        return scores, self._input_check_results(images, features, paths)

    def _scores_and_checks_in_parts(self, X):
        """:meth:`_scores_and_checks` of image files in parts, in bounded memory.

        Every unreadable file is named in one ImageLoadError.
        """
        if isinstance(X, np.ndarray) and X.dtype.kind == "f":
            return self._scores_and_checks(X)
        paths = check_paths(X)
        outcomes, failures = [], []
        for start in range(0, len(paths), _FILES_AT_ONCE):
            part = paths[start : start + _FILES_AT_ONCE]
            try:
                outcomes.append(self._scores_and_checks(part))
            except ImageLoadError as error:
                failures += error.failures
        if failures:
            raise ImageLoadError(failures, n_images=len(paths))
        first, second = zip(*outcomes, strict=True)
        return np.concatenate(first), np.concatenate(second)

    def predict(self, X):
        """Labels at the exported threshold.

        Parameters
        ----------
        X : sequence of image paths, or array of shape (n, h, w) or (n, h, w, 1)

        Returns
        -------
        ndarray of shape (n,)
            ``classes_[1]`` where the pneumonia probability reaches
            ``threshold_``, ``classes_[0]`` elsewhere.
        """
        pneumonia = self.predict_proba(X)[:, 1]
        return self.classes_[is_pneumonia(pneumonia, self.threshold_).astype(int)]

    def check_inputs(self, X):
        """Whether each image may be labelled: ``"ok"``, or why it may not.

        The checks of :meth:`PneumoniaCNNClassifier.check_inputs
        <pneumoclf.PneumoniaCNNClassifier.check_inputs>`, with the exported
        reference; an export without one checks the pixels and DICOM only.

        Parameters
        ----------
        X : sequence of image paths, or array of shape (n, h, w) or (n, h, w, 1)

        Returns
        -------
        ndarray of shape (n,), dtype object
        """
        return self._scores_and_checks_in_parts(X)[1]

    def _outputs(self, images):
        # In batches: one run over thousands of images is five times slower per
        # image than runs of a hundred, whose activations stay in the CPU's cache.
        runs = [
            self._session.run(None, {self._input: images[start : start + _BATCH]})
            for start in range(0, len(images), _BATCH)
        ] or [self._session.run(None, {self._input: images})]
        scores = np.concatenate([outputs[0].reshape(-1) for outputs in runs])
        if len(scores) != len(images):
            raise ValueError(
                f"{self.path} gives {len(scores)} scores for {len(images)} images: "
                "its graph is not the one pneumoclf exported."
            )
        if len(runs[0]) < 2:
            return scores, None
        return scores, np.concatenate([outputs[1] for outputs in runs])

    def _input_check_results(self, images, features, paths):
        checks = [validity.statistics_reasons(images)]
        if paths is not None:
            checks[:0] = [
                validity.dicom_reasons(paths),
                validity.colour_reasons(
                    paths, n_threads=self.n_threads, cache=self._caches()
                ),
            ]
        if self.input_reference_ is not None and features is not None:
            checks.append(validity.feature_reasons(self.input_reference_, features))
        return validity.input_check_results(*checks)

    def _images(self, X):
        """The images as the network takes them, and their files when known."""
        if isinstance(X, np.ndarray) and X.dtype.kind == "f":
            images = X[..., np.newaxis] if X.ndim == 3 else X
            if images.shape[1:] != self.image_shape_:
                raise ValueError(
                    f"X holds images of shape {images.shape[1:]}; the model takes "
                    f"{self.image_shape_}."
                )
            return np.ascontiguousarray(images, dtype=np.float32), paths_of(X)
        if "loader_" in self.__dict__:  # made, and perhaps set, by the caller
            images = self.loader_.transform(X)
        else:
            settings = self._reading()
            images = read_images(
                X, settings.pop("image_size"), n_jobs=None, cache=True, **settings
            )
        return images, paths_of(images)

    def _caches(self):
        return self.loader_.cache if "loader_" in self.__dict__ else True


def _calibration(metadata):
    value = metadata["calibration"]
    return None if value is None else tuple(float(part) for part in value)


def _read_metadata(session, path):
    stored = session.get_modelmeta().custom_metadata_map
    if stored.get("pneumoclf_format") != FORMAT:
        raise ValueError(
            f"{path} is not a pneumoclf ONNX export (its metadata has no "
            f"pneumoclf_format {FORMAT!r}); write one with "
            "pneumoclf.export.export_onnx or pneumoclf export."
        )
    try:
        metadata = {key: json.loads(stored[key]) for key in _METADATA_KEYS}
        # Exports before the input check carry no reference.
        metadata["input_reference"] = json.loads(stored.get("input_reference", "null"))
        _reference_from_json(metadata["input_reference"])
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(
            f"{path} has damaged pneumoclf metadata ({type(error).__name__}: {error})."
        ) from None
    _check_metadata(metadata, path)
    return metadata


def _check_regular_file(path):
    """Refuse a folder, pipe or device before opening: reading a pipe may block."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ValueError(
            f"{os.fspath(path)} cannot be read ({error.strerror or error})."
        ) from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{os.fspath(path)} is not a regular file.")


def _check_graph(session, image_shape, reference, path):
    """Refuse a graph whose inputs or outputs are not those of an export."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    problems = []
    if len(inputs) != 1 or list(inputs[0].shape[1:]) != list(image_shape):
        shapes = [list(node.shape) for node in inputs]
        problems.append(
            f"its inputs {shapes} are not one batch of images of shape {image_shape}, "
            "as its metadata says"
        )
    found = [list(node.shape[1:]) for node in outputs]
    features = found[1:]
    if reference is not None:
        features_fit = features in ([], [[len(reference.mean)]])
    else:  # an export whose reference was left out may still give features
        features_fit = len(features) <= 1 and all(len(f) == 1 for f in features)
    if found[:1] != [[1]] or not features_fit:
        problems.append(
            f"its outputs of shapes {found} are not a score per image (and the "
            "features of the input check)"
        )
    if problems:
        raise ValueError(
            f"{path} is not a pneumoclf ONNX export: {'; '.join(problems)}."
        )


def _two_ordered_labels(classes):
    """Two labels of one kind (text, or integers), the pneumonia class last."""
    if not (isinstance(classes, list) and len(classes) == 2):
        return False
    kinds = {type(label) for label in classes}
    return kinds in ({str}, {int}) and classes[0] < classes[1]


def _check_metadata(metadata, path):
    """Refuse metadata that would predict something other than what was exported."""
    problems = []
    classes = metadata["classes"]
    if not _two_ordered_labels(classes):
        problems.append(
            f"classes {classes!r} are not two labels, of one kind, the pneumonia "
            "class last"
        )
    threshold = metadata["threshold"]
    if not (isinstance(threshold, float | int) and 0 <= threshold < 1):
        problems.append(f"threshold {threshold!r} is not in [0, 1)")
    size = metadata["image_size"]
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(side, int) and side > 0 for side in size)
    ):
        problems.append(f"image_size {size!r} is not two positive integers")
    if metadata["resize"] not in ("stretch", "pad"):
        problems.append(f"resize {metadata['resize']!r} is unknown")
    if metadata["normalize"] not in (None, "equalize"):
        problems.append(f"normalize {metadata['normalize']!r} is unknown")
    for name in ("training_prevalence", "prevalence"):
        prevalence = metadata[name]
        if name == "prevalence" and prevalence is None:
            continue
        if not (isinstance(prevalence, float | int) and 0 < prevalence < 1):
            problems.append(f"{name} {prevalence!r} is not in (0, 1)")
    calibration = metadata["calibration"]
    if calibration is not None and not (
        isinstance(calibration, list)
        and len(calibration) == 2
        and all(isinstance(part, float | int) for part in calibration)
        and all(math.isfinite(part) for part in calibration)
        and calibration[0] > 0
    ):
        problems.append(
            f"calibration {calibration!r} is not a positive slope and an intercept"
        )
    if problems:
        raise ValueError(
            f"{path} has damaged pneumoclf metadata: {'; '.join(problems)}."
        )
