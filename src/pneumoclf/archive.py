"""Score a whole archive of image files: in shards, locally or on a Dask cluster.

A hospital that adopts a model first runs it over its archive, then over each
day's images. Reading and decoding the files costs far more than the network, so
:func:`score_archive` cuts the files into shards and scores each shard where a
worker runs: in processes of this machine, or on a Dask distributed cluster
(``pip install "pneumoclf[dask]"``). Each worker loads the model once, through
ONNX Runtime when it can (no TensorFlow there), reads its files itself, and writes
its shard's rows to a Parquet part file. The parts are joined into one Parquet
file at the end.

The run can be interrupted at any time (Ctrl-C, a killed worker or client): every
finished shard is kept in ``OUTPUT.parts/``, and the same call again scores only
what is missing. A file that cannot be read becomes a row with its error; files
already in ``output`` (scored by the same model) are not scored again, so a daily
run adds only the new files.
"""

import concurrent.futures
import functools
import hashlib
import math
import multiprocessing
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._utils import atomic_open, is_pneumonia
from .datasets import find_images
from .exceptions import ImageLoadError
from .validity import PASSED

__all__ = [
    "COLUMNS",
    "ArchiveSummary",
    "archive_files",
    "file_sha256",
    "score_archive",
    "score_shard",
]

#: The columns of the Parquet file, in order.
COLUMNS = (
    "path",
    "pneumonia_probability",
    "label",
    "input_check",
    "error",
    "model_sha256",
)
#: Files a shard holds unless told otherwise: a few seconds of work, a few
#: megabytes of images in memory.
DEFAULT_SHARD_SIZE = 500
# Suffixes of a text file that lists image files, one per line.
_LIST_SUFFIXES = frozenset({".txt", ".lst"})


class ArchiveSummary(NamedTuple):
    """What :func:`score_archive` did.

    Attributes
    ----------
    output : pathlib.Path
        The Parquet file, one row per file.
    n_files : int
        Rows in it.
    n_scored : int
        Files scored by this call (the others were in ``output`` already, or
        in part files of an interrupted call).
    n_errors : int
        Rows of files that could not be read.
    n_refused : int
        Rows of images the input check refused (no label).
    seconds : float
        Time this call took.
    """

    output: Path
    n_files: int
    n_scored: int
    n_errors: int
    n_refused: int
    seconds: float


def archive_files(sources):
    """The image files that ``sources`` name, each once, in order.

    Parameters
    ----------
    sources : iterable of str or os.PathLike
        Image files; folders (every image below, sorted,
        :func:`~pneumoclf.datasets.find_images`); text files ending in ``.txt``
        or ``.lst`` that list files or folders, one per line (blank lines and
        lines starting with ``#`` skipped).

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        If a folder holds no image, or nothing at all is named.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pneumoclf.archive import archive_files
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     listed = Path(folder, "files.txt")
    ...     _ = listed.write_text("# today\\na.jpeg\\nb.dcm\\na.jpeg\\n")
    ...     archive_files([listed, "c.png", "b.dcm"])
    ['a.jpeg', 'b.dcm', 'c.png']
    """
    files = []
    for source in sources:
        source = os.fspath(source)
        if os.path.isdir(source):
            found = find_images(source)
            if not found:
                raise ValueError(f"The folder {source} holds no image files.")
            files += [os.fspath(path) for path in found]
        elif Path(source).suffix.lower() in _LIST_SUFFIXES and os.path.isfile(source):
            files += archive_files(_listed(source))
        else:
            files.append(source)
    files = list(dict.fromkeys(files))
    if not files:
        raise ValueError("No image files to score.")
    return files


def _listed(list_file):
    with open(list_file, encoding="utf-8") as lines:
        return [
            line.strip()
            for line in lines
            if line.strip() and not line.lstrip().startswith("#")
        ]


def score_archive(
    model,
    files,
    output,
    *,
    client=None,
    scheduler=None,
    n_workers=None,
    shard_size=DEFAULT_SHARD_SIZE,
    progress=None,
):
    """Score many image files with a saved model, in shards, and keep every row.

    Parameters
    ----------
    model : str or os.PathLike
        A model file (``.pneumoclf``) or its ONNX export (``.onnx``). A model
        file is exported to ONNX once, beside the part files, when the
        ``onnx`` extra is installed, so that workers never import TensorFlow;
        otherwise workers load it with TensorFlow.
    files : iterable of str or os.PathLike
        What :func:`archive_files` takes: files, folders, lists of files.
        Every worker must reach them under the same paths.
    output : str or os.PathLike
        The Parquet file to write (``.parquet``). If it exists, written by this
        function with the same model, its files are kept and not scored again.
    client : distributed.Client, default=None
        A Dask client: its cluster scores the shards.
    scheduler : str, default=None
        Without ``client``: the address of a Dask scheduler
        (``"tcp://host:8786"``), or ``"local:N"`` for a local cluster of ``N``
        single-threaded worker processes.
    n_workers : int, default=None
        Without ``client`` and ``scheduler``: local worker processes (None: one
        per CPU); 0 scores in this process.
    shard_size : int, default=500
        Files per shard: the unit of work, of memory and of what an
        interruption can lose.
    progress : file-like, default=None
        Where to write a progress line (files done, rate, time left); None
        writes nothing.

    Returns
    -------
    ArchiveSummary

    Raises
    ------
    ValueError
        If ``output`` is no ``.parquet`` file, was scored by another model, or
        ``files`` names nothing.
    KeyboardInterrupt
        On Ctrl-C: the finished shards stay in ``OUTPUT.parts/`` and the next
        call picks them up.
    """
    started = time.perf_counter()
    output = Path(output)
    if output.suffix.lower() != ".parquet":
        raise ValueError(f"output must be a .parquet file, got {output}.")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}.")
    pyarrow = _require("pyarrow", "dask")
    model = Path(model)
    digest = file_sha256(model)
    earlier = _earlier_rows(output, digest, pyarrow)
    done = set() if earlier is None else set(earlier.column("path").to_pylist())
    missing = [path for path in archive_files(files) if path not in done]
    parts = Path(f"{output}.parts")
    parts.mkdir(exist_ok=True)
    shards = _shards(missing, shard_size, parts)
    pending = [shard for shard in shards if not shard.part.exists()]
    if pending:
        worker_model = _worker_model_file(model, digest, parts)
        with _executor(client, scheduler, n_workers) as submit:
            _run(submit, worker_model, digest, pending, progress, len(missing))
    table = _joined(earlier, [shard.part for shard in shards], pyarrow)
    with atomic_open(output, "wb") as file:
        pyarrow.parquet.write_table(table, file)
    shutil.rmtree(parts)
    errors = table.column("error").is_valid()
    checks = table.column("input_check").to_pylist()
    return ArchiveSummary(
        output=output,
        n_files=table.num_rows,
        n_scored=sum(len(shard.paths) for shard in pending),
        n_errors=int(np.count_nonzero(errors)),
        n_refused=sum(check not in (None, PASSED) for check in checks),
        seconds=time.perf_counter() - started,
    )


def file_sha256(path):
    """The SHA-256 of a file, in hexadecimal, read in chunks of a megabyte."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(functools.partial(file.read, 1024**2), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _require(module, extra):
    import importlib

    try:
        module = importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f'Scoring an archive needs {module}: pip install "pneumoclf[{extra}]".'
        ) from None
    if module.__name__ == "pyarrow":
        import pyarrow.parquet  # noqa: F401  # the submodule, for write_table
    return module


def _earlier_rows(output, digest, pyarrow):
    """The rows ``output`` holds already, or None; refused if another model made it."""
    if not output.exists():
        return None
    table = pyarrow.parquet.read_table(output)
    if table.column_names != list(COLUMNS):
        raise ValueError(
            f"{output} exists and is no archive of pneumoclf scores: move it away or "
            "choose another output."
        )
    digests = set(table.column("model_sha256").to_pylist())
    if digests - {digest}:
        raise ValueError(
            f"{output} holds scores of another model ({', '.join(sorted(digests))[:16]}"
            f"...); this one is {digest[:16]}...: choose another output."
        )
    return table


class _Shard(NamedTuple):
    paths: list
    part: Path


def _shards(paths, shard_size, parts):
    """``paths`` cut in shards, each named by its content, so a rerun finds it."""
    shards = []
    for start in range(0, len(paths), shard_size):
        chunk = paths[start : start + shard_size]
        name = hashlib.sha256("\0".join(chunk).encode("utf-8", "surrogateescape"))
        shards.append(_Shard(chunk, parts / f"part-{name.hexdigest()[:24]}.parquet"))
    return shards


def _worker_model_file(model, digest, parts):
    """The file workers load: an ONNX export where possible, else the model file."""
    if model.suffix.lower() == ".onnx":
        return model
    onnx_file = parts / f"model-{digest[:16]}.onnx"
    if onnx_file.exists():
        return onnx_file
    try:
        from .export import export_onnx
        from .persistence import load_model

        export_onnx(load_model(model), onnx_file)
    except ImportError:  # no onnx extra: the workers load TensorFlow
        return model
    return onnx_file


class _executor:
    """A context giving ``submit(function, *args, key=...)`` futures, and their end."""

    def __init__(self, client, scheduler, n_workers):
        self.client, self.scheduler, self.n_workers = client, scheduler, n_workers
        self._owned = []

    def __enter__(self):
        if self.client is None and self.scheduler is None:
            n_workers = os.cpu_count() if self.n_workers is None else self.n_workers
            if n_workers == 0:
                return _InProcess()
            pool = concurrent.futures.ProcessPoolExecutor(
                n_workers, mp_context=multiprocessing.get_context("spawn")
            )
            self._owned.append(pool)
            return _PoolSubmit(pool)
        distributed = _require("distributed", "dask")
        client = self.client
        if client is None:
            client = _client(distributed, self.scheduler)
            self._owned.append(client)
        return _DaskSubmit(client, distributed)

    def __exit__(self, kind, error, traceback):
        for owned in reversed(self._owned):
            if isinstance(owned, concurrent.futures.Executor):
                owned.shutdown(wait=kind is None, cancel_futures=True)
            else:
                cluster = owned.cluster
                owned.close()
                if cluster is not None:
                    cluster.close()
        return False


def _client(distributed, scheduler):
    if scheduler.startswith("local:"):
        try:
            n_workers = int(scheduler.removeprefix("local:"))
        except ValueError:
            n_workers = 0
        if n_workers < 1:
            raise ValueError(
                f"scheduler {scheduler!r}: 'local:N' needs a positive number of "
                "workers."
            )
        cluster = distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        return distributed.Client(cluster)
    return distributed.Client(scheduler)


class _InProcess:
    """Runs each shard in this process, when its result is asked for."""

    def __call__(self, function, *args, key):
        return _Deferred(functools.partial(function, *args))

    def as_completed(self, futures):
        return iter(futures)


class _Deferred(NamedTuple):
    work: functools.partial

    def result(self):
        return self.work()


class _PoolSubmit:
    def __init__(self, pool):
        self.pool = pool

    def __call__(self, function, *args, key):
        return self.pool.submit(function, *args)

    def as_completed(self, futures):
        return concurrent.futures.as_completed(futures)


class _DaskSubmit:
    def __init__(self, client, distributed):
        self.client, self.distributed = client, distributed

    def __call__(self, function, *args, key):
        # A worker lost mid-shard has its shard run again elsewhere; retries
        # cover a shard that failed for another passing reason.
        return self.client.submit(function, *args, key=key, pure=False, retries=2)

    def as_completed(self, futures):
        return self.distributed.as_completed(futures)


def _run(submit, model_file, digest, shards, progress, total):
    futures = [
        submit(
            score_shard,
            os.fspath(model_file),
            digest,
            shard.paths,
            os.fspath(shard.part),
            key=f"pneumoclf-{shard.part.stem}",
        )
        for shard in shards
    ]
    pending = sum(len(shard.paths) for shard in shards)
    meter = _Progress(progress, total, already=total - pending)
    for future in submit.as_completed(futures):
        meter.add(future.result())
    meter.close()


class _Progress:
    """Files done, rate and time left, on one line that rewrites itself."""

    def __init__(self, stream, total, already):
        self.stream, self.total, self.done = stream, total, already
        self.counted = 0
        self.started = time.perf_counter()

    def add(self, n_files):
        self.done += n_files
        self.counted += n_files
        if self.stream is None:
            return
        elapsed = time.perf_counter() - self.started
        rate = self.counted / elapsed if elapsed > 0 else math.inf
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        self.stream.write(
            f"\rScored {self.done:,} of {self.total:,} files "
            f"({rate:,.0f} files/s, {_duration(left)} left)"
        )
        self.stream.flush()

    def close(self):
        if self.stream is not None and self.counted:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def score_shard(model_file, digest, paths, part):
    """Score ``paths`` with the model of this worker; write their rows to ``part``.

    Runs on a worker. The model is loaded once per process; an unreadable file
    becomes a row with its error. The part file appears whole or not at all.

    Returns
    -------
    int
        The number of rows written.
    """
    import pyarrow
    import pyarrow.parquet

    loader, predictor = _loaded_model(model_file)
    table = pyarrow.table(_rows(loader, predictor, paths, digest), schema=_schema())
    with atomic_open(part, "wb") as file:
        pyarrow.parquet.write_table(table, file)
    return len(paths)


@functools.lru_cache(maxsize=2)
def _loaded_model(model_file):
    """The worker's image reader and predictor, loaded once per process."""
    if model_file.lower().endswith(".onnx"):
        from .export import OnnxPneumoniaModel

        # One thread each, as a worker has one core; no cache, as each file
        # is read once.
        model = OnnxPneumoniaModel(model_file, n_threads=1)
        return model.loader_.set_params(n_jobs=1, cache=False), model
    from .persistence import load_model
    from .recipes import image_file_pipeline

    pipeline = image_file_pipeline(load_model(model_file))
    for _, loader in pipeline.steps[:-1]:
        loader.set_params(cache=False)
    return pipeline[:-1], pipeline[-1]


def _rows(loader, predictor, paths, digest):
    """The columns of ``paths``' rows: scores, labels and checks, or errors."""
    errors = {}
    try:
        images = loader.transform(paths)
        readable = list(paths)
    except ImageLoadError as error:
        errors = {os.fspath(path): reason for path, reason in error.failures}
        readable = [path for path in paths if path not in errors]
        images = loader.transform(readable) if readable else None
    by_path = {}
    if readable:
        scores, checks = _scores_and_checks(predictor, images)
        labels = predictor.classes_[
            is_pneumonia(scores, predictor.threshold_).astype(int)
        ]
        for path, score, label, check in zip(
            readable, scores, labels, checks, strict=True
        ):
            if str(check) == PASSED:
                by_path[path] = (float(score), str(label), PASSED)
            else:
                by_path[path] = (None, None, str(check))
    rows = [by_path.get(path, (None, None, None)) for path in paths]
    return {
        "path": list(paths),
        "pneumonia_probability": [row[0] for row in rows],
        "label": [row[1] for row in rows],
        "input_check": [row[2] for row in rows],
        "error": [errors.get(path) for path in paths],
        "model_sha256": [digest] * len(paths),
    }


def _schema():
    import pyarrow

    text = pyarrow.string()
    return pyarrow.schema(
        [("path", text), ("pneumonia_probability", pyarrow.float64()),
         ("label", text), ("input_check", text), ("error", text),
         ("model_sha256", text)]
    )  # fmt: skip


def _scores_and_checks(predictor, images):
    """Pneumonia probabilities and input checks, from one network run where possible."""
    if hasattr(predictor, "predict_proba_and_check_inputs"):  # ONNX
        probabilities, checks = predictor.predict_proba_and_check_inputs(images)
        return probabilities[:, 1], checks
    import warnings

    from .exceptions import InputCheckWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputCheckWarning)  # the rows say it
        scores = predictor.predict_proba(images)[:, 1]
    return scores, predictor.check_inputs(images)


def _joined(earlier, parts, pyarrow):
    tables = [] if earlier is None else [earlier.cast(_schema())]
    tables += [pyarrow.parquet.read_table(part, schema=_schema()) for part in parts]
    if not tables:
        return _schema().empty_table()
    return pyarrow.concat_tables(tables)
