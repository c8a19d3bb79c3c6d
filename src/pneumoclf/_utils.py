"""Private helpers shared by several modules: label checks, file writing, errors."""

import contextlib
import errno
import os
import re
import secrets
import signal
import sys
import threading
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- labels


def missing_label_positions(y):
    """Positions of ``None`` and NaN in a 1-D label array."""
    if y.dtype.kind == "f":
        return np.flatnonzero(np.isnan(y))
    if y.dtype.kind != "O":
        return np.array([], dtype=int)
    return np.flatnonzero([is_missing(label) for label in y])


def is_missing(label):
    # NaN is the only value that differs from itself.
    return label is None or (isinstance(label, (float, np.floating)) and label != label)


def check_no_missing_labels(y, name, *, noun="label"):
    positions = missing_label_positions(y)
    if len(positions):
        listed = ", ".join(str(position) for position in positions[:10])
        more = ", ..." if len(positions) > 10 else ""
        raise ValueError(
            f"{name} holds missing {noun}s (None or NaN) at positions "
            f"{listed}{more}; every sample needs a {noun}."
        )


def check_label_order(labels, name):
    """Refuse labels whose sorted order would make NORMAL the pneumonia class.

    The greater label in sorted order is taken as pneumonia. A NORMAL label that
    sorts last (``"BACTERIA" < "NORMAL"``; stray spaces or mixed case, as in
    ``" PNEUMONIA" < "NORMAL"`` or ``"PNEUMONIA" < "normal"``), or a PNEUMONIA
    label that sorts first, would silently swap the two classes.
    """
    if len(labels) != 2 or not all(isinstance(label, str) for label in labels):
        return
    first, second = (str(label) for label in labels)
    if second.strip().upper() == "NORMAL" or first.strip().upper() == "PNEUMONIA":
        raise ValueError(
            f"The labels of {name} are {first!r} and {second!r}: in sorted order the "
            f"greater one, {second!r}, would be taken as pneumonia. Name the classes "
            "so that pneumonia sorts last, for example 'NORMAL' and 'PNEUMONIA' "
            "(without stray spaces, in one case: np.char.upper(np.char.strip(y))), "
            "or use 0 and 1."
        )


def binary_target(y, estimator_name):
    """Check that ``y`` holds labels of exactly two classes; return it as 1-D."""
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import column_or_1d

    y = column_or_1d(y, warn=True)
    if len(y) == 0:
        raise ValueError(
            f"y is empty: {estimator_name} needs labelled images of both classes "
            "to train."
        )
    check_no_missing_labels(y, "y")
    _check_labels_of_one_kind(y)
    check_classification_targets(y)
    classes = np.unique(y)
    if len(classes) > 2:
        raise ValueError(
            f"Only binary classification is supported: {estimator_name} tells "
            f"NORMAL from PNEUMONIA, but y holds {len(classes)} classes: "
            f"{classes.tolist()[:10]}."
        )
    if len(classes) < 2:
        raise ValueError(
            f"y holds one class only ({classes.tolist()}); {estimator_name} needs "
            "examples of both classes to train."
        )
    check_label_order(classes, "y")
    return y


def _check_labels_of_one_kind(y):
    if y.dtype.kind != "O":
        return
    is_text = np.array([isinstance(label, str) for label in y])
    if is_text.any() and not is_text.all():
        text, other = y[np.argmax(is_text)], y[np.argmin(is_text)]
        raise ValueError(
            f"y mixes text labels such as {text!r} with other labels such as "
            f"{other!r}; use one kind, for example 'NORMAL'/'PNEUMONIA' or 0/1."
        )


def is_pneumonia(scores, threshold):
    """The decision rule of the package: pneumonia where the probability reaches it."""
    return np.asarray(scores) >= threshold


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_open(path, mode="wb", **kwargs):
    """Open a file for writing that appears at ``path`` only once complete.

    The content goes to a temporary file beside ``path``, which is flushed,
    synced to disk and renamed over ``path`` when the block ends without error;
    on any error, or an interruption, the temporary file is removed and ``path``
    is left as it was. Temporary files that a killed process of this machine
    left beside ``path`` are removed first.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder must exist.
    mode : {"wb", "w"}, default="wb"
        Binary or text.
    **kwargs
        Passed to :func:`open`, such as ``encoding`` and ``newline``.

    Yields
    ------
    file : file object
        The temporary file, open for writing.

    Raises
    ------
    IsADirectoryError
        If ``path`` is a directory.
    FileNotFoundError
        If the folder of ``path`` does not exist; the error names the folder.
    OSError
        If the file cannot be written (no permission, a full disk); the error
        names ``path``, not the temporary file.
    """
    path = Path(path)
    check_writable_destination(path)
    _remove_orphans_of(path)
    temporary = path.with_name(
        f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}{_TEMPORARY_SUFFIX}"
    )
    try:
        # "x" refuses to follow an existing file; the permissions follow the umask.
        file = open(temporary, mode.replace("w", "x"), **kwargs)
        try:
            with file:
                yield file
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:
        if error.filename not in (None, str(temporary)):
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error


_TEMPORARY_SUFFIX = ".tmp"


def _remove_orphans_of(path):
    """Remove temporary files of ``path`` whose writing process no longer runs."""
    prefix = f".{path.name}."
    try:
        siblings = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in siblings:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(_TEMPORARY_SUFFIX)):
            continue
        pid, _, token = name[len(prefix) : -len(_TEMPORARY_SUFFIX)].partition(".")
        if pid.isdigit() and len(token) == 16 and not _is_running(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _is_running(pid):
    if os.name != "posix":
        return True  # signal 0 probes a process on POSIX only; elsewhere it kills
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a name this module wrote
    return True


def check_writable_destination(path):
    """Name ``path`` itself, not the temporary file, when it cannot be written."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if path.exists() and not path.is_file():
        # Renaming over a device or a pipe would replace it with a regular file.
        raise FileExistsError(
            errno.EEXIST,
            "Not a regular file (a device, pipe or socket), which writing would "
            "replace; name a regular file",
            str(path),
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, "No such folder to write the file in", str(path.parent)
        )


# --------------------------------------------------------------------------- errors


def describe_os_error(error):
    """One line that names the file of an ``OSError`` and what went wrong."""
    if error.filename is None or not error.strerror:
        return str(error)
    return f"{error.filename}: {error.strerror}."


# --------------------------------------------------------------------- text

# C0 and C1 control characters, DEL, and the Unicode line and paragraph
# separators: in a terminal they move the cursor, recolour or retitle the window;
# in Markdown they end a line.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control_characters(text, keep=""):
    """``text`` with each control character but those in ``keep`` as ``\\xNN``.

    For names from files and folders that reach a terminal or a document.

    Examples
    --------
    >>> escape_control_characters("a\\x1b[2Jb\\nc", keep="\\n")
    'a\\\\x1b[2Jb\\nc'
    """
    return _CONTROL_CHARACTERS.sub(
        lambda match: match[0] if match[0] in keep else f"\\x{ord(match[0]):02x}",
        str(text),
    )


# --------------------------------------------------------------------- interrupts


@contextlib.contextmanager
def recording_ctrl_c(record):
    """Call ``record()`` as Ctrl-C arrives, then raise ``KeyboardInterrupt`` as usual.

    TensorFlow may turn an interrupt raised inside its code into another error, or
    swallow it, and one raised inside a finalizer is lost with a printed traceback:
    what ``record`` saw lets the caller stop all the same, so such a traceback is
    not printed. Only Python's own handler, or that of an enclosing block, in the
    main thread, is replaced, for the block's duration.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT)
    ours = previous is signal.default_int_handler or hasattr(previous, "records")
    if not (in_main_thread and ours):
        yield
        return

    def interrupted(signum, frame):
        record()
        if previous is signal.default_int_handler:
            raise KeyboardInterrupt
        previous(signum, frame)  # an enclosing block's: it records, then raises

    interrupted.records = record
    previous_hook = sys.unraisablehook

    def unraisable(hook_args):
        if not issubclass(hook_args.exc_type, KeyboardInterrupt):
            previous_hook(hook_args)

    signal.signal(signal.SIGINT, interrupted)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
