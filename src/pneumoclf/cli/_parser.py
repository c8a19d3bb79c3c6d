"""The argument parser of ``pneumoclf``: options, their types and help.

Building the parser imports nothing heavy, so that ``--help`` and ``--version``
answer at once. Option values are checked here only for their type; their ranges
are the classifier's own parameter constraints, checked by the commands before any
long work.
"""

import argparse
from pathlib import Path

from ..recipes import DEMO_EPOCHS, DROPOUT, IMAGE_SIZE, TARGET_RECALL

PROG = "pneumoclf"

#: Environment variable holding the key that signs and checks model files.
MODEL_KEY_VARIABLE = "PNEUMOCLF_MODEL_KEY"

#: Trial scores ``pneumoclf tune --scoring`` offers.
SCORINGS = ("roc_auc", "recall_weighted")


def build_parser():
    """The argument parser of the ``pneumoclf`` command, with its subcommands.

    Returns
    -------
    argparse.ArgumentParser
        Each subcommand sets ``command`` to its name in the parsed arguments.
    """
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Recall-first pneumonia detection on pediatric chest X-rays.",
        epilog=(
            f"environment: with {MODEL_KEY_VARIABLE} set, train, tune and adapt "
            "sign the model files they write with its value (HMAC-SHA256), and "
            "the commands that read one refuse any model file not signed with it."
        ),
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
        _add_info_parser,
        _add_predict_parser,
        _add_explain_parser,
        _add_export_parser,
        _add_tune_parser,
        _add_adapt_parser,
        _add_check_site_parser,
    ):
        add_parser(subparsers)
    return parser


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
        type=int,
        default=DEMO_EPOCHS,
        metavar="N",
        help="largest number of training epochs (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the split and of the training (default: %(default)s)",
    )
    demo.set_defaults(command="demo")


def _add_train_parser(subparsers):
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
        type=int,
        metavar="N",
        help="largest number of training epochs (default: the classifier's, 100)",
    )
    train.add_argument(
        "--image-size",
        type=int,
        default=IMAGE_SIZE,
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
        type=float,
        metavar="R",
        help=(
            "with --threshold auto, the recall the threshold must reach on the "
            f"validation part; the best specificity wins (default: {TARGET_RECALL})"
        ),
    )
    train.add_argument(
        "--dropout",
        type=float,
        default=DROPOUT,
        metavar="P",
        help=(
            "dropout rate before the output layer; 0 trains the reference network "
            "(default: %(default)s)"
        ),
    )
    train.add_argument(
        "--batch-size",
        type=int,
        metavar="B",
        help="images per gradient step (default: the classifier's, 64)",
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        metavar="LR",
        help="initial learning rate (default: the classifier's, 0.001)",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the validation split and of the network, recorded in the "
        "model and its card; demo, train and tune share this default "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--quiet", action="store_true", help="print nothing but errors and warnings"
    )
    train.set_defaults(command="train")


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
        "model",
        metavar="MODEL",
        type=Path,
        help="model file written by 'train', or its ONNX export (.onnx)",
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
            "also write DIR/index.html, a report page that opens without network "
            "access (figures with their uncertainty, the worst errors, the model "
            "card), and its figures as PNG files (needs matplotlib: pip install "
            '"pneumoclf[plot]")'
        ),
    )
    _add_input_check(evaluate)
    _add_refer_band(evaluate)
    evaluate.set_defaults(command="evaluate")


def _add_info_parser(subparsers):
    info = subparsers.add_parser(
        "info",
        help="print the model card a model file carries",
        description=(
            "Print the Markdown model card that 'train' wrote into MODEL: intended "
            "use, training data, recipe, threshold rule and what the validation "
            "part showed, versions and seed. Nothing in the file is run."
        ),
    )
    info.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    info.set_defaults(command="info")


#: Exit status of predict and explain when --on-error skip left files out.
SKIPPED_FILES_STATUS = 3

#: Exit status of predict, evaluate and explain when some images did not pass the
#: input check (and no file was left out).
REFUSED_INPUTS_STATUS = 4

#: What the input_check column says when --skip-input-check turned the check off.
INPUT_CHECK_SKIPPED = "not checked (--skip-input-check)"

_FILES_HELP = "image files, or folders: every image below a folder, sorted"


def _add_on_error(parser):
    parser.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help=(
            "what an unreadable file does: stop (default) fails with the list of "
            "every such file; skip reports each on stderr, handles the others and "
            f"exits with status {SKIPPED_FILES_STATUS}"
        ),
    )


def _add_input_check(parser):
    parser.add_argument(
        "--skip-input-check",
        action="store_true",
        help=(
            "label every image, also those the input check refuses as no frontal "
            "chest X-ray like the training images (research use; the output says "
            "so). Without it such images get no label and the command exits with "
            f"status {REFUSED_INPUTS_STATUS}"
        ),
    )


#: Label ``predict --refer-band`` gives an image in the band.
REFER_LABEL = "REFER"


def _add_refer_band(parser):
    parser.add_argument(
        "--refer-band",
        type=_refer_band,
        metavar="W",
        help=(
            f"answer {REFER_LABEL} instead of a label where the probability lies "
            "within W of the way from the threshold to 0 or to 1 (0 <= W < 1; "
            "e.g. 0.2 around a threshold of 0.9 refers 0.72 to 0.92); evaluate "
            "reports the share referred and the figures of the rest"
        ),
    )


def _refer_band(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _add_adapt_parser(subparsers):
    adapt = subparsers.add_parser(
        "adapt",
        help="recalibrate a model and choose its threshold on labelled local X-rays",
        description=(
            "Adapt MODEL to a new site: recalibrate its probabilities and choose its "
            "threshold on the labelled X-rays under LOCAL_DIR (laid out as for "
            "'train'; DICOM too), by patient, and print the recall and specificity "
            "the site should expect, estimated by cross-fitting over the local "
            "patients, with their intervals. The network is kept. Images the input "
            "check refuses are left out and named. The adapted model, its record "
            "of the adaptation and its model card go to SITE_MODEL."
        ),
    )
    adapt.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    adapt.add_argument(
        "data_dir",
        metavar="LOCAL_DIR",
        type=Path,
        help="folder of labelled local chest X-rays",
    )
    adapt.add_argument(
        "-o",
        "--output",
        metavar="SITE_MODEL",
        type=Path,
        required=True,
        help="adapted model file to write",
    )
    adapt.add_argument(
        "--min-recall",
        type=float,
        default=TARGET_RECALL,
        metavar="R",
        help=(
            "the recall the threshold must keep on new local cases "
            "(default: %(default)s)"
        ),
    )
    adapt.add_argument(
        "--json", action="store_true", help="print the adaptation record as JSON"
    )
    adapt.set_defaults(command="adapt")


def _add_check_site_parser(subparsers):
    check = subparsers.add_parser(
        "check-site",
        help="whether unlabelled local X-rays differ from the model's population",
        description=(
            "Compare the unlabelled X-rays FILE (files or folders) with the "
            "population MODEL was fitted for (its validation patients, or the local "
            "images of its last adaptation): estimate their share of pneumonia and "
            "test whether the model sees them as a mixture of its reference's "
            "normal and pneumonia images. Images the input check refuses are left "
            "out. Needs at least 30 images; the larger the batch, the smaller the "
            "shift it can see. Exit status 0 either way; --json says 'shifted'."
        ),
    )
    check.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    check.add_argument("files", metavar="FILE", nargs="+", help=_FILES_HELP)
    check.add_argument(
        "--json",
        action="store_true",
        help=(
            "print one JSON object: shifted, p_value, estimated_prevalence, "
            "reference_prevalence, n_images, statistic, message"
        ),
    )
    check.set_defaults(command="check_site")


def _add_predict_parser(subparsers):
    predict = subparsers.add_parser(
        "predict",
        help="pneumonia probability and label of each image file",
        description=(
            "Predict image files with a saved model: one row per file with its "
            "path, the probability of pneumonia, the label at the model's "
            "threshold and the input check ('ok', or why the image is no chest "
            "X-ray like the training images: such a row gets no probability and "
            "no label). CSV with a header by default (full precision); --table "
            "aligns columns with 4 decimals. MODEL may be an ONNX file written by "
            "'export', which predicts without loading TensorFlow."
        ),
    )
    predict.add_argument(
        "model",
        metavar="MODEL",
        type=Path,
        help="model file written by 'train', or an .onnx file written by 'export'",
    )
    predict.add_argument("files", metavar="FILE", nargs="+", help=_FILES_HELP)
    output_format = predict.add_mutually_exclusive_group()
    output_format.add_argument(
        "--json", action="store_true", help="write a JSON array of objects"
    )
    output_format.add_argument(
        "--table",
        action="store_true",
        help="write an aligned table, probabilities to 4 decimals",
    )
    predict.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=Path,
        help="file to write instead of standard output",
    )
    _add_on_error(predict)
    _add_input_check(predict)
    _add_refer_band(predict)
    archive = predict.add_argument_group(
        "scoring an archive",
        "With --scheduler, or -o ending in .parquet, the files are scored in shards "
        'by worker processes (pip install "pneumoclf[dask]"): one Parquet row per '
        "file (path, pneumonia_probability, label, input_check, error, "
        "model_sha256); an unreadable file is a row with its error; an interrupted "
        "run keeps its finished shards in OUT.parts/ and the same command again "
        "scores only what is missing.",
    )
    archive.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=(
            "a Dask scheduler's address (tcp://host:8786), or local:N for a local "
            "cluster of N workers; without it, local processes, one per CPU"
        ),
    )
    archive.add_argument(
        "--shard-size",
        type=int,
        default=500,
        metavar="N",
        help="files per shard, the unit of work and of resumption (default: 500)",
    )
    predict.set_defaults(command="predict")


#: Heat-map methods ``pneumoclf explain --method`` offers, the default first (the
#: names of :data:`pneumoclf.explain.METHODS`, which this module cannot import
#: without loading TensorFlow).
EXPLAIN_METHODS = ("integrated_gradients", "gradcam", "occlusion")


def _add_explain_parser(subparsers):
    explain = subparsers.add_parser(
        "explain",
        help="heat maps of where the model sees pneumonia",
        description=(
            "Write one PNG per image file, <name>_<method>.png in DIR: the image "
            "with a heat map of the evidence for pneumonia laid over it."
        ),
    )
    explain.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    explain.add_argument("files", metavar="FILE", nargs="+", help=_FILES_HELP)
    explain.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        required=True,
        help="folder for the overlays (created if missing)",
    )
    explain.add_argument(
        "--method",
        choices=EXPLAIN_METHODS,
        default=EXPLAIN_METHODS[0],
        help="how the maps are computed (default: %(default)s)",
    )
    explain.add_argument(
        "--layer",
        metavar="NAME",
        help="with --method gradcam, the convolution layer (default: the last one)",
    )
    _add_on_error(explain)
    _add_input_check(explain)
    explain.set_defaults(command="explain")


def _add_export_parser(subparsers):
    export = subparsers.add_parser(
        "export",
        help="write a saved model as ONNX, to predict without TensorFlow",
        description=(
            "Write the network of a saved model as an ONNX file whose metadata "
            "holds the image size, the resize rule, the calibration, the "
            "threshold and the class names, so that 'pneumoclf predict OUT' or "
            "pneumoclf.export.OnnxPneumoniaModel predict exactly as the model "
            'does. Needs the onnx extra: pip install "pneumoclf[onnx]".'
        ),
    )
    export.add_argument(
        "model", metavar="MODEL", type=Path, help="model file written by 'train'"
    )
    export.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=Path,
        required=True,
        help="ONNX file to write, e.g. model.onnx",
    )
    export.set_defaults(command="export")


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
        type=int,
        required=True,
        metavar="N",
        help="finished trials the study must hold, counting every process",
    )
    tune.add_argument(
        "--timeout",
        type=float,
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
        type=int,
        metavar="N",
        help="fix the largest number of epochs per trial (default: the model's)",
    )
    tune.add_argument(
        "--image-size",
        type=int,
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
        type=int,
        metavar="T",
        help="CPU threads of this process, for several workers on one machine",
    )
    tune.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the split and the networks; the same in every worker "
        "(default: %(default)s)",
    )
    tune.add_argument(
        "--quiet", action="store_true", help="print nothing but errors and warnings"
    )
    tune.set_defaults(command="tune")


def _threshold(text):
    """A threshold option: 'auto' or a number; the classifier checks its range."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number in [0, 1) or 'auto', got {text!r}"
        ) from None
