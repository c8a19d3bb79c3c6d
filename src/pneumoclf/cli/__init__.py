"""The ``pneumoclf`` command: train, evaluate and apply pneumonia classifiers.

Subcommands:

``pneumoclf demo``
    Train and evaluate on the bundled sample of 200 X-rays, in about a minute.
``pneumoclf train DATA_DIR -o MODEL``
    Train the recipe of :mod:`pneumoclf.recipes` on every image of a
    ``chest_xray``-like folder and save the model.
``pneumoclf evaluate MODEL DATA_DIR``
    Clinical figures (recall, specificity, ...) of a saved model on a folder;
    with ``--report-dir``, an HTML report page.
``pneumoclf info MODEL``
    The model card a model file carries.
``pneumoclf predict MODEL FILE...``
    Pneumonia probability and label of each image file.
``pneumoclf explain MODEL FILE... --out DIR``
    Heat maps over each image file.
``pneumoclf export MODEL -o model.onnx``
    The model as an ONNX file, which ``predict`` runs without TensorFlow.
``pneumoclf tune DATA_DIR --n-trials N``
    Optuna search of the pipeline, shared by every process that names the same
    ``--storage`` and ``--study-name``.

The package only parses (``_parser``), calls the library and prints
(``_commands``). Failures exit with status 1 (2 for usage errors; 3 when
``--on-error skip`` left unreadable files out; 4 when ``predict``, ``evaluate`` or
``explain`` met images the input check refused, which get no label) and one
message on stderr, and
output files are written atomically: an interrupted command leaves no partial
file.
"""

import contextlib
import logging
import os
import signal
import sys
import tempfile
import warnings

from .._deprecation import moved_attribute
from ._parser import PROG, build_parser

__all__ = ["build_parser", "console_main", "main"]

# Names that moved to the library; kept here, with a warning, until 0.3.
_MOVED = {
    "DEMO_EPOCHS": "pneumoclf.recipes",
    "DEMO_SPLIT": "pneumoclf.recipes",
    "DEMO_VALIDATION_FRACTION": "pneumoclf.recipes",
    "DROPOUT": "pneumoclf.recipes",
    "TARGET_RECALL": "pneumoclf.recipes",
    "FIGURE_NAMES": "pneumoclf.plotting",
}


def __getattr__(name):
    return moved_attribute(__name__, name, _MOVED)


def main(argv=None):
    """Run the ``pneumoclf`` command.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; None means ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 1 on failure, 2 on a usage error, 3 when
        ``--on-error skip`` left unreadable files out, 4 when the input check
        refused images (they get no label), 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version and usage errors
        return int(exit_request.code or 0)
    with warnings.catch_warnings():
        # Deprecations inside the dependencies are for developers, not users.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.showwarning = _show_warning
        return _run(args)


def console_main(argv=None):
    """The ``pneumoclf`` command as a program: :func:`main`, then a quiet exit.

    Once the command's work is done, Ctrl-C is ignored: while the interpreter and
    TensorFlow shut down (seconds), it would only turn a finished command into a
    traceback and a death by signal.

    Returns
    -------
    int
        As :func:`main`.
    """
    status = main(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status


def _run(args):
    from .._utils import recording_ctrl_c

    # An interrupt lost inside a finalizer lets the command go on to its end; it
    # would also print a traceback, which this holds back.
    with recording_ctrl_c(lambda: None):
        return _run_command(args)


def _run_command(args):
    from .._utils import describe_os_error

    try:
        if _needs_tensorflow(args):
            _start_tensorflow_quietly()
        from . import _commands

        try:
            return getattr(_commands, f"run_{args.command}")(args)
        except _commands.UsageError as error:
            return _fail(str(error), status=2)
    except KeyboardInterrupt:
        return _fail("interrupted; no partial file was left.", status=130)
    except OSError as error:
        return _fail(describe_os_error(error))
    except ModuleNotFoundError as error:
        return _fail(_missing_module(args.command, error))
    except (ValueError, ImportError) as error:
        return _fail(str(error))
    except Exception as error:
        return _fail(f"unexpected {type(error).__name__}: {error}")


# What a prediction-only installation (pneumoclf-onnx) leaves out, by the name of
# the distribution that provides it.
_FULL_INSTALL_MODULES = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "scikeras": "scikeras",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
}


def _missing_module(command, error):
    """Say what a missing dependency means for ``command``."""
    top = (error.name or "").partition(".")[0]
    if top not in _FULL_INSTALL_MODULES:
        return str(error)
    return (
        f"pneumoclf {command} needs {_FULL_INSTALL_MODULES[top]}, which is not "
        "installed here. Install "
        "the full package (pip install pneumoclf); without it, pneumoclf predicts "
        "from an ONNX export (pneumoclf export MODEL -o model.onnx, "
        "where pneumoclf is installed)."
    )


def _needs_tensorflow(args):
    """Whether the command runs a Keras network (a card or an ONNX export does not)."""
    if args.command == "info":
        return False
    onnx = (
        getattr(args, "model", None) is not None
        and args.model.suffix.lower() == ".onnx"
    )
    return not (args.command in ("predict", "evaluate") and onnx)


def _start_tensorflow_quietly():
    """Import TensorFlow and find its devices without its start-up log lines.

    TensorFlow's native code writes them (CUDA probing, oneDNN notices) straight
    to the process's standard error, where no Python setting reaches; they are
    held back here, and shown only if TensorFlow fails to start.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _native_stderr_captured() as captured:
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            captured.replay = True
            raise
    # TensorFlow's Python warnings (retracing notices) are for developers.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _Captured:
    replay = False


@contextlib.contextmanager
def _native_stderr_captured():
    """Send file descriptor 2 to a temporary file for the block's duration."""
    captured = _Captured()
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced, e.g. by a test
        stderr_fd = 2
    sys.stderr.flush()
    saved = os.dup(stderr_fd)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), stderr_fd)
        try:
            yield captured
        finally:
            os.dup2(saved, stderr_fd)
            os.close(saved)
            if captured.replay:
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))


def _fail(message, status=1):
    from ._commands import printable

    print(printable(f"{PROG}: error: {message}"), file=sys.stderr)
    return status


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from ._commands import printable

    print(printable(f"{PROG}: warning: {message}"), file=sys.stderr)
