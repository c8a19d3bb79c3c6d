"""The ``pneumoclf`` command: train, evaluate and apply pneumonia classifiers.

Subcommands:

``pneumoclf demo``
    Train and evaluate on the bundled sample of 200 X-rays, in about a minute.
``pneumoclf train DATA_DIR -o MODEL``
    Train on every image of a ``chest_xray``-like folder and save the model.
``pneumoclf evaluate MODEL DATA_DIR``
    Clinical figures (recall, specificity, ...) of a saved model on a folder.
``pneumoclf predict MODEL FILE...``
    Pneumonia probability and label of each image file.
``pneumoclf explain MODEL FILE... --out DIR``
    Grad-CAM heat maps over each image file.
``pneumoclf tune DATA_DIR --n-trials N``
    Optuna search of the pipeline, shared by every process that names the same
    ``--storage`` and ``--study-name``.

Each subcommand is added by a ``_add_<name>_parser(subparsers)`` function that
registers a ``_run_<name>(args)`` function returning the exit status. Failures
exit with status 1 (2 for usage errors) and one message on stderr, and output
files are written atomically: an interrupted command leaves no partial file.
"""

import os

# TensorFlow reads this when it is first imported, so the library (which imports
# TensorFlow) is imported inside the functions below, never at the top.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import csv
import io
import json
import math
import sys
import time
import warnings
from pathlib import Path

PROG = "pneumoclf"

#: The demo's patient-grouped split of the bundled sample: train, validation, test.
#: The classifier holds out its own validation part of the training images.
DEMO_SPLIT = (0.8, 0.0, 0.2)
DEMO_EPOCHS = 30
DEMO_IMAGE_SIZE = 64
DEMO_VALIDATION_FRACTION = 0.2

#: Recall the automatic threshold of ``train`` and ``demo`` must reach on the
#: validation patients: a margin above the 97% sensitivity a recall-first
#: screening asks for, since a threshold is chosen on a few hundred cases
#: (benchmarks/threshold_rule.py chose it on val patients of five splits).
TARGET_RECALL = 0.99

#: Dropout rate of ``train`` and ``demo``: on the val patients of three splits it
#: raised the AUC on each (benchmarks/threshold_rule.py --set dropout=0.3).
DROPOUT = 0.3

FIGURE_NAMES = ("roc_curve.png", "confusion_matrix.png", "training_curves.png")


class UsageError(Exception):
    """Options that argparse accepts one by one but that do not go together."""


def main(argv=None):
    """Run the ``pneumoclf`` command.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; None means ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 1 on failure, 2 on a usage error, 130
        when interrupted.
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
        try:
            return args.run(args)
        except KeyboardInterrupt:
            return _fail("interrupted; no partial file was left.", status=130)
        except UsageError as error:
            return _fail(str(error), status=2)
        except OSError as error:
            return _fail(_describe_os_error(error))
        except (ValueError, ImportError) as error:
            return _fail(str(error))
        except Exception as error:
            return _fail(f"unexpected {type(error).__name__}: {error}")


def build_parser():
    """The argument parser of the ``pneumoclf`` command, with its subcommands."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Recall-first pneumonia detection on pediatric chest X-rays.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for add_parser in (
        _add_demo_parser,
        _add_train_parser,
        _add_evaluate_parser,
        _add_predict_parser,
        _add_explain_parser,
        _add_tune_parser,
    ):
        add_parser(subparsers)
    return parser


# ---------------------------------------------------------------------------------
# pneumoclf demo
# ---------------------------------------------------------------------------------


def _add_demo_parser(subparsers):
    demo = subparsers.add_parser(
        "demo",
        help="train and evaluate on the bundled sample of 200 X-rays",
        description=(
            "Train a classifier on the bundled sample of 200 real chest X-rays "
            "(100 NORMAL, 100 PNEUMONIA, one per patient) and report its "
            "clinical figures on held-out patients. 200 images are far too few to "
            "judge a model: this shows the workflow, not the attainable quality."
        ),
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEMO_EPOCHS,
        metavar="N",
        help="largest number of training epochs (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="S",
        help="seed of the split and of the training (default: %(default)s)",
    )
    demo.set_defaults(run=_run_demo)


def _run_demo(args):
    from .datasets import load_sample
    from .metrics import clinical_report, format_clinical_report
    from .model_selection import patient_split

    start = time.perf_counter()
    data = load_sample()
    train, _, test = patient_split(
        data.paths,
        data.target,
        groups=data.groups,
        sizes=DEMO_SPLIT,
        random_state=args.seed,
    )
    labels = _labels(data)
    print(
        f"Bundled sample: {_describe_counts(data.target)}, one image per patient.\n"
        f"Patient-grouped split (seed {args.seed}): training on "
        f"{_describe_counts(data.target[train])}, of which the classifier holds "
        f"out {DEMO_VALIDATION_FRACTION:.0%} to stop early and choose the threshold; "
        f"testing on the {_describe_counts(data.target[test])} of the other "
        "patients.\n"
        f"Training on {DEMO_IMAGE_SIZE}x{DEMO_IMAGE_SIZE} images, at most "
        f"{args.epochs} epochs:"
    )
    pipeline = _make_pipeline(
        DEMO_IMAGE_SIZE,
        epochs=args.epochs,
        threshold="auto",
        target_recall=TARGET_RECALL,
        dropout=DROPOUT,
        validation_fraction=DEMO_VALIDATION_FRACTION,
        random_state=args.seed,
        verbose=2,
    )
    pipeline.fit(data.paths[train], labels[train], cnn__groups=data.groups[train])
    scores = pipeline.predict_proba(data.paths[test])[:, 1]
    threshold = pipeline[-1].decision_threshold()
    report = clinical_report(data.target[test], scores, threshold)
    print(
        f"\nHeld-out patients ({len(test)} images, split seed {args.seed}; "
        f"{pipeline[-1].n_epochs_} epochs run):"
    )
    print(format_clinical_report(report))
    print(f"\nElapsed: {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------------------------
# pneumoclf train
# ---------------------------------------------------------------------------------


def _add_train_parser(subparsers):
    from .classifier import PneumoniaCNNClassifier
    from .preprocessing import ImageLoader

    defaults = PneumoniaCNNClassifier().get_params()
    train = subparsers.add_parser(
        "train",
        help="train a classifier on a folder of X-rays and save it",
        description=(
            "Train a classifier on every image under DATA_DIR, laid out as "
            "DATA_DIR/<split>/{NORMAL,PNEUMONIA}/ or DATA_DIR/{NORMAL,PNEUMONIA}/ "
            "(all splits found are used), and save it with save_model. The "
            "classifier holds out a validation part of these images, by whole "
            "patients and stratified by class, to stop early and to choose the "
            "threshold. Evaluate the model on other patients with "
            "'pneumoclf evaluate'."
        ),
    )
    train.add_argument(
        "data_dir", metavar="DATA_DIR", type=Path, help="folder of chest X-rays"
    )
    train.add_argument(
        "-o",
        "--output",
        metavar="MODEL",
        type=Path,
        required=True,
        help="model file to write, e.g. model.pneumoclf",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=defaults["epochs"],
        metavar="N",
        help="largest number of training epochs (default: %(default)s)",
    )
    train.add_argument(
        "--image-size",
        type=_positive_int,
        default=ImageLoader().get_params()["image_size"],
        metavar="S",
        help="side, in pixels, the images are resized to (default: %(default)s)",
    )
    train.add_argument(
        "--threshold",
        type=_threshold,
        default="auto",
        metavar="T|auto",
        help=(
            "decision threshold on the pneumonia probability, or 'auto' to "
            "choose a recall-first one on the validation part (default: "
            "%(default)s)"
        ),
    )
    train.add_argument(
        "--target-recall",
        type=_recall,
        metavar="R",
        help=(
            "with --threshold auto, the recall the threshold must reach on the "
            f"validation part; the best specificity wins (default: {TARGET_RECALL})"
        ),
    )
    train.add_argument(
        "--dropout",
        type=_dropout_rate,
        default=DROPOUT,
        metavar="P",
        help=(
            "dropout rate before the output layer; 0 trains the reference network "
            "(default: %(default)s)"
        ),
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=defaults["batch_size"],
        metavar="B",
        help="images per gradient step (default: %(default)s)",
    )
    train.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=defaults["learning_rate"],
        metavar="LR",
        help="initial learning rate (default: %(default)s)",
    )
    train.add_argument(
        "--seed",
        type=_seed,
        default=defaults["random_state"],
        metavar="S",
        help="seed for a repeatable training (default: none)",
    )
    train.add_argument(
        "--quiet", action="store_true", help="print nothing but errors and warnings"
    )
    train.set_defaults(run=_run_train)


def _run_train(args):
    from .datasets import load_chest_xray
    from .persistence import save_model

    if args.target_recall is not None and args.threshold != "auto":
        raise UsageError(
            f"--target-recall {args.target_recall} needs --threshold auto, not "
            f"--threshold {args.threshold}."
        )
    target_recall = args.target_recall
    if args.threshold == "auto" and target_recall is None:
        target_recall = TARGET_RECALL
    _check_output_path(args.output, "-o/--output")
    data = load_chest_xray(args.data_dir)
    if not args.quiet:
        print(
            f"Training on {_describe_counts(data.target)} from {args.data_dir}, "
            f"resized to {args.image_size}x{args.image_size}:"
        )
    pipeline = _make_pipeline(
        args.image_size,
        epochs=args.epochs,
        threshold=args.threshold,
        target_recall=target_recall,
        dropout=args.dropout,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        random_state=args.seed,
        verbose=0 if args.quiet else 2,
    )
    pipeline.fit(data.paths, _labels(data), cnn__groups=data.groups)
    save_model(pipeline, args.output)
    classifier = pipeline[-1]
    if not args.quiet:
        print(
            f"Saved the model to {args.output} ({classifier.n_epochs_} epochs run, "
            f"threshold {classifier.decision_threshold():.4f})."
        )
    return 0


# ---------------------------------------------------------------------------------
# pneumoclf evaluate
# ---------------------------------------------------------------------------------


def _add_evaluate_parser(subparsers):
    evaluate = subparsers.add_parser(
        "evaluate",
        help="clinical figures of a saved model on a folder of X-rays",
        description=(
            "Predict every image under DATA_DIR (same layouts as 'train') with a "
            "saved model, at its own threshold, and report ROC AUC, recall "
            "(sensitivity), specificity, precision, F2 and the confusion counts."
        ),
    )
    evaluate.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    evaluate.add_argument(
        "data_dir", metavar="DATA_DIR", type=Path, help="folder of chest X-rays"
    )
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of a table (undefined figures: null)",
    )
    evaluate.add_argument(
        "--report-dir",
        metavar="DIR",
        type=Path,
        help=(
            "also write roc_curve.png, confusion_matrix.png and, when the model "
            "kept its training history, training_curves.png to DIR (needs "
            'matplotlib: pip install "pneumoclf[plot]")'
        ),
    )
    evaluate.set_defaults(run=_run_evaluate)


def _run_evaluate(args):
    from .datasets import load_chest_xray
    from .metrics import clinical_report, format_clinical_report
    from .persistence import load_model

    if args.report_dir is not None:
        _figure_class()  # fail before the long part if matplotlib is missing
    model = _image_file_model(load_model(args.model))
    data = load_chest_xray(args.data_dir)
    scores = model.predict_proba(data.paths)[:, 1]
    threshold = model[-1].decision_threshold()
    report = clinical_report(data.target, scores, threshold)
    if args.report_dir is not None:
        _write_figures(
            args.report_dir, data.target, scores, threshold, model[-1].history_
        )
    if args.json:
        summary = {"model": str(args.model), "data_dir": str(args.data_dir), **report}
        print(json.dumps(_nan_to_none(summary), allow_nan=False))
        return 0
    print(
        f"Model {args.model} on {_describe_counts(data.target)} from {args.data_dir}:"
    )
    print(format_clinical_report(report))
    print()
    print(_format_confusion_matrix(report))
    if args.report_dir is not None:
        print(f"\nFigures written to {args.report_dir}")
    return 0


def _format_confusion_matrix(report):
    rows = [
        ("", "pred. NORMAL", "pred. PNEUMONIA"),
        ("NORMAL", str(report["tn"]), str(report["fp"])),
        ("PNEUMONIA", str(report["fn"]), str(report["tp"])),
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = ["Confusion matrix (rows: truth)"]
    for label, *counts in rows:
        cells = [
            f"{count:>{width}}" for count, width in zip(counts, widths[1:], strict=True)
        ]
        lines.append(f"  {label:<{widths[0]}}  " + "  ".join(cells))
    return "\n".join(lines)


def _nan_to_none(summary):
    return {
        key: None if isinstance(value, float) and math.isnan(value) else value
        for key, value in summary.items()
    }


# ---------------------------------------------------------------------------------
# pneumoclf predict
# ---------------------------------------------------------------------------------


def _add_predict_parser(subparsers):
    predict = subparsers.add_parser(
        "predict",
        help="pneumonia probability and label of each image file",
        description=(
            "Predict image files with a saved model: one row per file with its "
            "path, the probability of pneumonia and the label at the model's "
            "threshold. CSV with a header by default."
        ),
    )
    predict.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    predict.add_argument("files", metavar="FILE", nargs="+", help="image files")
    predict.add_argument(
        "--json", action="store_true", help="write a JSON array of objects"
    )
    predict.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=Path,
        help="file to write instead of standard output",
    )
    predict.set_defaults(run=_run_predict)


def _run_predict(args):
    from .persistence import load_model

    if args.output is not None:
        _check_output_path(args.output, "-o/--output")
    model = _image_file_model(load_model(args.model))
    scores = model.predict_proba(args.files)[:, 1]
    classes = model.classes_.tolist()
    threshold = model[-1].decision_threshold()
    rows = [
        {
            "path": path,
            "pneumonia_probability": float(score),
            "label": classes[int(score >= threshold)],
        }
        for path, score in zip(args.files, scores, strict=True)
    ]
    text = _rows_as_json(rows) if args.json else _rows_as_csv(rows)
    _write_text(text, args.output)
    return 0


def _rows_as_csv(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _rows_as_json(rows):
    return json.dumps(rows, indent=2) + "\n"


# ---------------------------------------------------------------------------------
# pneumoclf explain
# ---------------------------------------------------------------------------------


def _add_explain_parser(subparsers):
    explain = subparsers.add_parser(
        "explain",
        help="Grad-CAM heat maps of where the model sees pneumonia",
        description=(
            "Write one PNG per image file, <name>_gradcam.png in DIR: the image "
            "with a Grad-CAM heat map of the evidence for pneumonia laid over it."
        ),
    )
    explain.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    explain.add_argument("files", metavar="FILE", nargs="+", help="image files")
    explain.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        required=True,
        help="folder for the overlays (created if missing)",
    )
    explain.add_argument(
        "--layer",
        metavar="NAME",
        help="convolution layer to explain (default: the last one)",
    )
    explain.set_defaults(run=_run_explain)


def _run_explain(args):
    from .explain import save_overlays
    from .persistence import load_model

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder.")
    model = _image_file_model(load_model(args.model))
    for path in save_overlays(model, args.files, args.out, layer=args.layer):
        print(path)
    return 0


# ---------------------------------------------------------------------------------
# pneumoclf tune
# ---------------------------------------------------------------------------------

SCORINGS = ("roc_auc", "recall_weighted")


def _add_tune_parser(subparsers):
    tune = subparsers.add_parser(
        "tune",
        help="search the architecture and training settings with Optuna",
        description=(
            "Search the pipeline's settings (architecture, optimisation, "
            "augmentation, image size, threshold rule) with Optuna: each trial "
            "trains on the images of DATA_DIR and is scored on other patients. "
            "Processes on any number of machines that name the same --storage "
            "and --study-name share one study; a rerun resumes it."
        ),
    )
    tune.add_argument(
        "data_dir", metavar="DATA_DIR", type=Path, help="folder of chest X-rays"
    )
    tune.add_argument(
        "--n-trials",
        type=_positive_int,
        required=True,
        metavar="N",
        help="finished trials the study must hold, counting every process",
    )
    tune.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="seconds after which this process starts no new trial",
    )
    tune.add_argument(
        "--storage",
        metavar="URL",
        help=(
            "where the study lives: a database URL such as sqlite:///study.db or "
            "postgresql://user@host/db, or a journal file path (default: memory)"
        ),
    )
    tune.add_argument(
        "--study-name", metavar="NAME", help="name of the study in --storage"
    )
    tune.add_argument(
        "-o",
        "--output",
        metavar="MODEL",
        type=Path,
        help="train the best settings on all images and save the model here",
    )
    tune.add_argument(
        "--epochs",
        type=_positive_int,
        metavar="N",
        help="fix the largest number of epochs per trial (default: the model's)",
    )
    tune.add_argument(
        "--image-size",
        type=_positive_int,
        metavar="S",
        help="fix the image side instead of searching it",
    )
    tune.add_argument(
        "--scoring",
        choices=SCORINGS,
        default="roc_auc",
        help=(
            "trial score on the validation patients: ROC AUC, or F2 with a "
            "specificity floor (default: %(default)s)"
        ),
    )
    tune.add_argument(
        "--no-pruning", action="store_true", help="never stop a trial early"
    )
    tune.add_argument(
        "--n-threads",
        type=_positive_int,
        metavar="T",
        help="CPU threads of this process, for several workers on one machine",
    )
    tune.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="S",
        help="seed of the split and the networks; the same in every worker "
        "(default: %(default)s)",
    )
    tune.add_argument(
        "--quiet", action="store_true", help="print nothing but errors and warnings"
    )
    tune.set_defaults(run=_run_tune)


def _run_tune(args):
    from .datasets import load_chest_xray
    from .metrics import make_recall_weighted_scorer
    from .model_selection import limit_threads, tune
    from .persistence import save_model

    if args.n_threads is not None:
        limit_threads(args.n_threads)
    if args.output is not None:
        _check_output_path(args.output, "-o/--output")
    data = load_chest_xray(args.data_dir)
    fixed_params = {}
    if args.epochs is not None:
        fixed_params["cnn__epochs"] = args.epochs
    if args.image_size is not None:
        fixed_params["load__image_size"] = args.image_size
    if args.scoring == "roc_auc":
        # The AUC does not depend on the threshold: searching its rule would be
        # blind, so the best pipeline gets the recipe's.
        fixed_params["cnn__target_recall"] = TARGET_RECALL
    scoring = {"roc_auc": "roc_auc", "recall_weighted": make_recall_weighted_scorer()}
    study, best = tune(
        data.paths,
        _labels(data),
        groups=data.groups,
        fixed_params=fixed_params,
        n_trials=args.n_trials,
        timeout=args.timeout,
        storage=args.storage,
        study_name=args.study_name,
        scoring=scoring[args.scoring],
        pruning=not args.no_pruning,
        random_state=args.seed,
        n_threads=args.n_threads,
        refit=args.output is not None,
        verbose=0 if args.quiet else 1,
    )
    if best is not None:
        save_model(best, args.output)
    if not args.quiet:
        print(_describe_study(study, args.scoring))
        if best is not None:
            print(f"Saved the best pipeline, trained on all images, to {args.output}.")
    return 0


def _describe_study(study, scoring):
    from optuna.trial import TrialState

    states = [trial.state for trial in study.trials]
    lines = [
        f"Study {study.study_name!r}: {states.count(TrialState.COMPLETE)} complete, "
        f"{states.count(TrialState.PRUNED)} pruned, "
        f"{states.count(TrialState.FAIL)} failed trials."
    ]
    if TrialState.COMPLETE not in states:
        return lines[0]
    best = study.best_trial
    lines.append(f"Best trial #{best.number}: validation {scoring} {best.value:.4f}")
    lines.extend(f"  {name} = {value}" for name, value in best.params.items())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------


def _make_pipeline(image_size, **classifier_params):
    from sklearn.pipeline import Pipeline

    from .classifier import PneumoniaCNNClassifier
    from .preprocessing import ImageLoader

    return Pipeline(
        [
            ("load", ImageLoader(image_size=image_size)),
            ("cnn", PneumoniaCNNClassifier(**classifier_params)),
        ]
    )


def _image_file_model(estimator):
    """A pipeline that reads image files, around a saved classifier if need be."""
    from sklearn.pipeline import Pipeline

    from .preprocessing import ImageLoader

    if isinstance(estimator, Pipeline):
        return estimator
    height, width, channels = estimator.image_shape_
    if channels != 1:
        raise ValueError(
            f"The model expects images of {channels} channels; the command line "
            "reads grayscale image files only."
        )
    return Pipeline(
        [("load", ImageLoader(image_size=(height, width))), ("cnn", estimator)]
    )


def _labels(data):
    """The folder labels, ``"NORMAL"`` and ``"PNEUMONIA"``, of a loaded data set."""
    return data.target_names[data.target]


def _describe_counts(target):
    n_pneumonia = int(sum(target))
    return (
        f"{len(target)} images ({len(target) - n_pneumonia} NORMAL, "
        f"{n_pneumonia} PNEUMONIA)"
    )


def _check_output_path(path, option):
    """Refuse an output path that cannot be written, before any long work."""
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file name.")
    if not path.parent.is_dir():
        raise ValueError(f"{option} {path}: the folder {path.parent} does not exist.")


def _write_text(text, output):
    """Write ``text`` to the file ``output``, or to standard output if None.

    A file name that is not valid in the file system's encoding reaches Python as
    surrogate escapes (PEP 383); it is written back as the bytes it came from.
    """
    from .persistence import atomic_open

    if output is None:
        _write_to_stdout(text)
        return
    with atomic_open(
        output, "w", encoding="utf-8", errors="surrogateescape", newline=""
    ) as file:
        file.write(text)


def _write_to_stdout(text):
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream, such as io.StringIO
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode(sys.stdout.encoding, "surrogateescape"))
    buffer.flush()


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "--report-dir draws its figures with matplotlib, which is not "
            'installed: pip install "pneumoclf[plot]"'
        ) from None
    return Figure


def _write_figures(folder, y_true, scores, threshold, history):
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    folder.mkdir(parents=True, exist_ok=True)
    roc, ax = _new_figure()
    RocCurveDisplay.from_predictions(
        y_true, scores, ax=ax, name="model", plot_chance_level=True
    )
    predicted = scores >= threshold
    ax.plot(
        predicted[y_true == 0].mean(),
        predicted[y_true == 1].mean(),
        "o",
        color="black",
        label=f"threshold {threshold:.3f}",
    )
    ax.set(
        xlabel="False positive rate (1 - specificity)",
        ylabel="True positive rate (recall)",
    )
    ax.legend(loc="lower right")
    _save_figure(roc, folder / FIGURE_NAMES[0])

    confusion, ax = _new_figure()
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        predicted.astype(int),
        labels=[0, 1],
        display_labels=["NORMAL", "PNEUMONIA"],
        ax=ax,
        colorbar=False,
    )
    ax.set_title(f"Threshold {threshold:.3f}")
    _save_figure(confusion, folder / FIGURE_NAMES[1])

    if history:
        _save_figure(_training_curves(history), folder / FIGURE_NAMES[2])


def _new_figure(ncols=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = _figure_class()(figsize=(5 * ncols, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(ncols=ncols)


def _training_curves(history):
    from matplotlib.ticker import MaxNLocator

    figure, axes = _new_figure(ncols=2)
    for ax, metric, title in zip(
        axes, ("loss", "auc"), ("Loss", "ROC AUC"), strict=True
    ):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker=".", label=label)
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    return figure


def _save_figure(figure, path):
    from .persistence import atomic_open

    with atomic_open(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100)


# ---------------------------------------------------------------------------------
# Option types and messages
# ---------------------------------------------------------------------------------


def _positive_int(text):
    value = _parse(int, text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seed(text):
    value = _parse(int, text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _positive_float(text):
    value = _parse(float, text, "a positive number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _threshold(text):
    if text == "auto":
        return text
    value = _parse(float, text, "a number in [0, 1] or 'auto'")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(
            f"must be a number in [0, 1] or 'auto', got {text}"
        )
    return value


def _dropout_rate(text):
    value = _parse(float, text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def _recall(text):
    value = _parse(float, text, "a number in (0, 1]")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text}")
    return value


def _parse(kind, text, expected):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None


def _describe_os_error(error):
    if error.filename is None or not error.strerror:
        return str(error)
    return f"{error.filename}: {error.strerror}."


def _fail(message, status=1):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
