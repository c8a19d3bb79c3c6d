"""What each ``pneumoclf`` subcommand does: call the library, print the outcome.

Each ``run_<command>(args)`` takes the parsed arguments and returns the exit
status. The library is imported inside them: it loads TensorFlow.
"""

import csv
import io
import json
import math
import os
import sys
import tempfile
import time
import warnings

from .._utils import atomic_open, escape_control_characters, is_pneumonia
from ..persistence import MIN_KEY_BYTES
from ..recipes import (
    DEMO_SPLIT,
    DEMO_VALIDATION_FRACTION,
    TARGET_RECALL,
    image_file_pipeline,
    make_pipeline,
)
from ._parser import (
    INPUT_CHECK_SKIPPED,
    MODEL_KEY_VARIABLE,
    PROG,
    REFER_LABEL,
    REFUSED_INPUTS_STATUS,
    SKIPPED_FILES_STATUS,
)

#: Level of the confidence intervals ``pneumoclf evaluate`` reports.
CONFIDENCE = 0.95


class UsageError(Exception):
    """Options that are wrong, or that do not go together; exit status 2."""


# Options of ``train`` that set a pipeline parameter, and the parameter.
_TRAIN_OPTIONS = {
    "epochs": "cnn__epochs",
    "image_size": "load__image_size",
    "threshold": "cnn__threshold",
    "target_recall": "cnn__target_recall",
    "dropout": "cnn__dropout",
    "batch_size": "cnn__batch_size",
    "learning_rate": "cnn__learning_rate",
    "seed": "cnn__random_state",
}


def run_demo(args):
    from ..datasets import load_sample
    from ..metrics import clinical_report, format_clinical_report
    from ..model_selection import patient_split

    start = time.perf_counter()
    pipeline = _checked_pipeline(
        args,
        {"epochs": "cnn__epochs", "seed": "cnn__random_state"},
        cnn__validation_fraction=DEMO_VALIDATION_FRACTION,
        cnn__verbose=2,
    )
    data = load_sample()
    train, _, test = patient_split(
        data.paths,
        data.target,
        groups=data.groups,
        sizes=DEMO_SPLIT,
        random_state=args.seed,
    )
    size = pipeline.named_steps["load"].image_size
    print(
        f"Bundled sample: {_describe_counts(data.target)}, one image per patient.\n"
        f"Patient-grouped split (seed {args.seed}): training on "
        f"{_describe_counts(data.target[train])}, of which the classifier holds "
        f"out {DEMO_VALIDATION_FRACTION:.0%} to stop early and choose the threshold; "
        f"testing on the {_describe_counts(data.target[test])} of the other "
        "patients.\n"
        f"Training on {size}x{size} images, at most {args.epochs} epochs:"
    )
    labels = _labels(data)
    pipeline.fit(data.paths[train], labels[train], cnn__groups=data.groups[train])
    scores = pipeline.predict_proba(data.paths[test])[:, 1]
    report = clinical_report(
        data.target[test],
        scores,
        pipeline[-1].threshold_,
        confidence=CONFIDENCE,
        groups=data.groups[test],
        random_state=args.seed,
    )
    print(
        f"\nHeld-out patients ({len(test)} images, split seed {args.seed}; "
        f"{pipeline[-1].n_epochs_} epochs run):"
    )
    print(format_clinical_report(report))
    print(f"\nElapsed: {time.perf_counter() - start:.1f} s")
    return 0


def run_train(args):
    from ..datasets import load_chest_xray
    from ..persistence import save_model
    from ..report import model_card

    if args.target_recall is not None and args.threshold != "auto":
        raise UsageError(
            f"--target-recall {args.target_recall} needs --threshold auto, not "
            f"--threshold {args.threshold}."
        )
    _check_output_path(args.output, "-o/--output")
    key = _model_key()
    # The recipe's target recall belongs to its automatic threshold only.
    no_target = {} if args.threshold == "auto" else {"cnn__target_recall": None}
    pipeline = _checked_pipeline(
        args, _TRAIN_OPTIONS, cnn__verbose=0 if args.quiet else 2, **no_target
    )
    data = load_chest_xray(args.data_dir)
    if not args.quiet:
        print(
            f"Training on {_describe_counts(data.target)} from {args.data_dir}, "
            f"resized to {args.image_size}x{args.image_size}:"
        )
    _fit_trained(pipeline, data.paths, _labels(data), cnn__groups=data.groups)
    card = model_card(pipeline, data, data_dir=args.data_dir)
    save_model(pipeline, args.output, key=key, model_card=card)
    card_path = _model_card_path(args.output)
    _write_text(card, card_path)
    classifier = pipeline[-1]
    if not args.quiet:
        print(
            f"Saved the model to {args.output} ({classifier.n_epochs_} epochs run, "
            f"threshold {classifier.threshold_:.4f}), its model card to {card_path}."
        )
        print(_describe_validation(classifier.validation_report_))
    _warn_if_low_specificity(classifier.validation_report_)
    return 0


#: Below this validation specificity, ``train`` warns: more than two healthy
#: children in five would be flagged.
LOW_SPECIFICITY = 0.6


def _describe_validation(report):
    """The validation figures the threshold was chosen on, with their intervals."""
    from ..metrics import wilson_interval

    if report is None:
        return (
            "No validation part was held out: the threshold was not chosen on "
            "images the network did not train on."
        )
    n_pneumonia = report["n_pneumonia"]
    n_normal = report["n_images"] - n_pneumonia
    patients = (
        "" if report["n_patients"] is None else f" of {report['n_patients']} patients"
    )

    def figure(name, share, n):
        low, high = wilson_interval(round(share * n), n, CONFIDENCE)
        return (
            f"{name} {share:.1%} ({CONFIDENCE:.0%} CI {low:.1%} to {high:.1%}, n={n})"
        )

    return (
        f"On the validation part ({report['n_images']} images{patients}) at "
        f"threshold {report['threshold']:.4f}: "
        f"{figure('recall', report['recall'], n_pneumonia)}, "
        f"{figure('specificity', report['specificity'], n_normal)}, "
        f"ROC AUC {report['roc_auc']:.3f}."
    )


def _warn_if_low_specificity(report):
    if report is None or report["specificity"] >= LOW_SPECIFICITY:
        return
    n_normal = report["n_images"] - report["n_pneumonia"]
    false_alarms = round((1 - report["specificity"]) * n_normal)
    warnings.warn(
        f"the validation specificity is {report['specificity']:.1%}: "
        f"{false_alarms} of its {n_normal} normal X-rays were flagged as "
        "pneumonia. The threshold keeps the recall; train longer, on more "
        "images, or choose a lower --target-recall.",
        UserWarning,
        stacklevel=2,
    )


def _model_card_path(model_path):
    """Where ``train`` writes the model card of ``model_path``: ``NAME.card.md``."""
    return model_path.with_suffix(".card.md")


def run_evaluate(args):
    from ..datasets import load_chest_xray
    from ..metrics import clinical_report, format_clinical_report
    from ..persistence import read_model_card
    from ..plotting import kept_epoch, require_matplotlib
    from ..report import write_report

    if args.report_dir is not None:
        require_matplotlib("--report-dir")  # before the long part
    key = _model_key()
    model = _predictor(args.model)
    # An ONNX export keeps no training history, card or population reference.
    classifier = model.pipeline[-1] if isinstance(model, _PipelineOnPaths) else None
    data = load_chest_xray(args.data_dir)
    import numpy as np

    scores, checks = _scores_and_checks(model, data.paths, args)
    refused = np.array([not _passed(check) for check in checks])
    if refused.any():
        _refused_on_stderr(data.paths, checks)
        data = _without(data, refused)
        scores = scores[~refused]
    if classifier is not None:
        _warn_if_trained_on(model.pipeline, data.paths, args.data_dir)
        model.warn_if_site_shifted(data.paths)
    threshold = model.threshold_
    report = clinical_report(
        data.target,
        scores,
        threshold,
        confidence=CONFIDENCE,
        groups=data.groups,
        random_state=0,
        refer_band=args.refer_band,
    )
    page = None
    if args.report_dir is not None:
        page = write_report(
            args.report_dir,
            data.target,
            scores,
            threshold,
            paths=data.paths,
            groups=data.groups,
            history=None if classifier is None else classifier.history_,
            kept_epoch=None if classifier is None else kept_epoch(classifier),
            report=report,
            model_card=None
            if classifier is None
            else read_model_card(args.model, key=key),
            title=f"{args.model.name} on {args.data_dir}",
        )
    status = REFUSED_INPUTS_STATUS if refused.any() else 0
    input_check = "skipped" if args.skip_input_check else f"{refused.sum()} refused"
    if args.json:
        summary = {
            "model": str(args.model),
            "data_dir": str(args.data_dir),
            "input_check": input_check,
            **report,
        }
        print(json.dumps(_nan_to_none(summary), allow_nan=False))
        return status
    print(
        f"Model {args.model} on {_describe_counts(data.target)} from {args.data_dir}"
        f" (input check: {input_check}):"
    )
    print(format_clinical_report(report))
    print()
    print(_format_confusion_matrix(report))
    if page is not None:
        print(f"\nReport written to {page}")
    return status


def _without(data, refused):
    """The data set without the images the input check refused."""
    per_image = ("paths", "target", "groups", "split")
    return data.__class__(
        **{key: value[~refused] if key in per_image else value
           for key, value in data.items()}
    )  # fmt: skip


def run_info(args):
    from ..persistence import read_model_card

    card = read_model_card(args.model, key=_model_key())
    if card is None:
        print(
            f"{args.model} carries no model card: it was saved without one "
            "('pneumoclf train' writes one)."
        )
        return 0
    _write_to_stdout(printable(card))
    return 0


def printable(text):
    """``text`` with each control character but newline and tab as ``\\xNN``.

    For what reaches a terminal: a card or a file name may hold escape sequences.
    """
    return escape_control_characters(text, keep="\n\t")


def run_predict(args):
    if args.output is not None:
        _check_output_path(args.output, "-o/--output")
    if args.scheduler is not None or _is_parquet(args.output):
        return _score_archive(args)
    model = _predictor(args.model)
    files, (scores, checks), skipped = _on_readable_files(
        lambda paths: _scores_and_checks(model, paths, args),
        _image_files(args.files),
        args,
    )
    labels = model.classes_[is_pneumonia(scores, model.threshold_).astype(int)]
    labels = labels.astype(object)
    if args.refer_band is not None:
        from ..metrics import referral_mask

        labels[referral_mask(scores, model.threshold_, args.refer_band)] = REFER_LABEL
    if isinstance(model, _PipelineOnPaths):  # an ONNX export keeps no reference
        model.warn_if_site_shifted(
            [path for path, check in zip(files, checks, strict=True) if _passed(check)]
        )
    rows = [
        _row(path, float(score), label, check)
        for path, score, label, check in zip(
            files, scores, labels.tolist(), checks, strict=True
        )
    ]
    if args.json:
        text = _rows_as_json(rows)
    elif args.table:
        text = _rows_as_table(rows)
    else:
        text = _rows_as_csv(rows)
    _write_text(text, args.output)
    if args.output is not None:
        print(_describe_written(rows, skipped, args.output))
    return _status(skipped, checks)


def _describe_written(rows, skipped, output):
    """What ``predict -o`` wrote: rows by label, refused and left-out files."""
    from collections import Counter

    labels = Counter(
        "refused" if row["label"] is None else row["label"] for row in rows
    )
    counts = ", ".join(
        f"{count} {label}" for label, count in sorted(labels.items(), key=str)
    )
    left_out = f"; {len(skipped)} unreadable files left out" if skipped else ""
    return f"Wrote {len(rows)} rows ({counts}) to {output}{left_out}."


def _is_parquet(path):
    return path is not None and path.suffix.lower() == ".parquet"


def _score_archive(args):
    from ..archive import score_archive

    if not _is_parquet(args.output):
        raise UsageError("--scheduler writes Parquet: give -o ending in .parquet.")
    if args.refer_band is not None or args.skip_input_check or args.json or args.table:
        raise UsageError(
            "an archive is scored to Parquet with the input check and without a "
            "refer band: drop --refer-band, --skip-input-check, --json and --table."
        )
    key = _model_key()
    if key is not None:
        if _is_onnx(args.model):
            raise ValueError(
                f"{args.model} is an ONNX export, which carries no signature, but "
                f"{MODEL_KEY_VARIABLE} asks for signed model files."
            )
        from ..persistence import load_model

        load_model(args.model, key=key)  # refuses a file the key did not sign
    try:
        summary = score_archive(
            args.model,
            args.files,
            args.output,
            scheduler=args.scheduler,
            shard_size=args.shard_size,
            progress=sys.stderr,
        )
    except KeyboardInterrupt:
        print(
            f"{PROG}: the finished shards are kept in {args.output}.parts; run the "
            "same command again to score the rest.",
            file=sys.stderr,
        )
        raise
    print(
        f"Wrote {summary.n_files:,} rows to {summary.output} ({summary.n_scored:,} "
        f"files scored now, {summary.n_errors:,} unreadable, {summary.n_refused:,} "
        f"refused by the input check) in {summary.seconds:.1f} s."
    )
    if summary.n_errors:
        return SKIPPED_FILES_STATUS
    return REFUSED_INPUTS_STATUS if summary.n_refused else 0


def _scores_and_checks(model, paths, args):
    """Pneumonia probability and input check of each file, with no input warning."""
    from ..exceptions import InputCheckWarning

    both = getattr(model, "predict_proba_and_check_inputs", None)
    if both is not None and not args.skip_input_check:  # one run of the network
        probabilities, checks = both(paths)
        return probabilities[:, 1], [str(check) for check in checks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputCheckWarning)  # the rows say it
        scores = model.predict_proba(paths)[:, 1]
    return scores, _checks(model, paths, args)


def _checks(model, paths, args):
    """The input check of each file, or that it was skipped."""
    if args.skip_input_check:
        return [INPUT_CHECK_SKIPPED] * len(paths)
    return [str(check) for check in model.check_inputs(paths)]


def _passed(check):
    return check in ("ok", INPUT_CHECK_SKIPPED)


def _row(path, score, label, check):
    """One output row; an image refused by the input check gets no figures."""
    if not _passed(check):
        score, label = None, None
    return {
        "path": path,
        "pneumonia_probability": score,
        "label": label,
        "input_check": check,
    }


def _status(skipped, checks):
    """The exit status: files left out, else images refused, else 0."""
    if skipped:
        return SKIPPED_FILES_STATUS
    if not all(_passed(check) for check in checks):
        return REFUSED_INPUTS_STATUS
    return 0


def _refused_on_stderr(paths, checks):
    for path, check in zip(paths, checks, strict=True):
        if not _passed(check):
            print(printable(f"{PROG}: no label for {path}: {check}"), file=sys.stderr)


def run_explain(args):
    from ..explain import save_overlays
    from ..persistence import load_model

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder.")
    if args.layer is not None and args.method != "gradcam":
        raise UsageError("--layer chooses a Grad-CAM layer; add --method gradcam.")
    if _is_onnx(args.model):
        raise ValueError(
            f"{args.model} is an ONNX export, which holds no gradients to explain; "
            "give the model file written by 'train'."
        )
    model = _PipelineOnPaths(
        image_file_pipeline(load_model(args.model, key=_model_key()))
    )

    def overlays_of_the_passing(paths):
        checks = _checks(model, paths, args)
        passing = [
            path for path, check in zip(paths, checks, strict=True) if _passed(check)
        ]
        if not passing:
            return [], checks
        written = save_overlays(
            model.pipeline, passing, args.out, method=args.method, layer=args.layer
        )
        return written, checks

    files, (written, checks), skipped = _on_readable_files(
        overlays_of_the_passing, _image_files(args.files), args
    )
    _refused_on_stderr(files, checks)
    for path in written:
        print(path)
    return _status(skipped, checks)


def run_adapt(args):
    from ..datasets import load_chest_xray
    from ..persistence import is_signed, load_model, read_model_card, save_model
    from ..site import adapt_to_site, adaptation_card

    _check_output_path(args.output, "-o/--output")
    if not 0 < args.min_recall < 1:
        raise UsageError(f"--min-recall must be in (0, 1), got {args.min_recall}.")
    key = _model_key()
    if key is None and is_signed(args.model):
        raise UsageError(
            f"{args.model} is signed: set {MODEL_KEY_VARIABLE} to its key, so that "
            "its signature is checked and the adapted model is signed too."
        )
    model = image_file_pipeline(load_model(args.model, key=key))
    data = load_chest_xray(args.data_dir)
    paths, labels, groups = _passing_local_images(model, data)
    adapted = adapt_to_site(
        model, paths, labels, groups=groups, min_recall=args.min_recall
    )
    record = adapted[-1].adaptations_[-1]
    card = read_model_card(args.model, key=key)
    card = adaptation_card(record, card)
    save_model(adapted, args.output, key=key, model_card=card)
    if args.json:
        print(json.dumps(_nan_to_none(record), allow_nan=False))
        return 0
    print(_describe_adaptation(record, args.output))
    return 0


def _passing_local_images(model, data):
    """Paths, labels and patients of the local images the input check lets pass."""
    import numpy as np

    checks = model[-1].check_inputs(model[:-1].transform(data.paths))
    refused = np.array([not _passed(str(check)) for check in checks])
    if refused.any():
        _refused_on_stderr(data.paths, [str(check) for check in checks])
        print(
            f"{PROG}: left out {refused.sum()} of {len(refused)} local images that "
            "the input check refused.",
            file=sys.stderr,
        )
    kept = ~refused
    return list(data.paths[kept]), _labels(data)[kept], data.groups[kept]


def _describe_adaptation(record, output):
    recall_low, recall_high = record["recall_interval"]
    spec_low, spec_high = record["specificity_interval"]
    level = f"{record['confidence']:.0%}"
    needed = record["pneumonia_cases_needed"]
    if needed is None:
        planning = (
            f"The estimated recall does not exceed {record['min_recall']:g}, so no "
            "number of local cases would bring its lower bound there."
        )
    else:
        planning = (
            f"About {needed} local PNEUMONIA cases would bring the recall's "
            f"lower bound to {record['min_recall']:g}."
        )
    return "\n".join(
        [
            f"Adapted on {record['n_images']} local images of {record['n_patients']} "
            f"patients ({record['prevalence']:.0%} PNEUMONIA).",
            f"At the model's own threshold ({record['previous_threshold']:.4f}): "
            f"recall {record['previous_recall']:.1%}, specificity "
            f"{record['previous_specificity']:.1%}.",
            f"New threshold {record['threshold']:.4f} (recall target "
            f"{record['min_recall']:g}). The site should expect, cross-fitted over "
            f"its patients: recall {record['recall']:.1%} ({level} CI "
            f"{recall_low:.1%} to {recall_high:.1%}), specificity "
            f"{record['specificity']:.1%} ({level} CI {spec_low:.1%} to "
            f"{spec_high:.1%}).",
            planning,
            f"Saved the adapted model to {output}.",
        ]
    )


def run_check_site(args):
    from ..persistence import load_model
    from ..site import check_site

    model = image_file_pipeline(load_model(args.model, key=_model_key()))
    files = _image_files(args.files)
    images = model[:-1].transform(files)
    checks = [str(check) for check in model[-1].check_inputs(images)]
    passing = [
        path for path, check in zip(files, checks, strict=True) if _passed(check)
    ]
    if len(passing) < len(files):
        _refused_on_stderr(files, checks)
    finding = check_site(model, passing)
    if args.json:
        print(json.dumps(finding._asdict(), allow_nan=False))
    else:
        print(finding.message)
    return 0


def run_export(args):
    from ..export import export_onnx
    from ..persistence import load_model

    _check_output_path(args.output, "-o/--output")
    export_onnx(load_model(args.model, key=_model_key()), args.output)
    print(f"ONNX model written to {args.output}")
    return 0


def _is_onnx(path):
    return path.suffix.lower() == ".onnx"


def _predictor(model_path):
    """A model file or ONNX export: ``predict_proba`` and ``check_inputs`` of paths.

    It also has ``classes_`` and ``threshold_``.
    """
    if _is_onnx(model_path):
        from ..export import OnnxPneumoniaModel

        if _model_key() is not None:
            raise ValueError(
                f"{model_path} is an ONNX export, which carries no signature, but "
                f"{MODEL_KEY_VARIABLE} asks for signed model files; unset it to "
                "predict from the export."
            )
        return OnnxPneumoniaModel(model_path)
    from ..persistence import load_model

    pipeline = image_file_pipeline(load_model(model_path, key=_model_key()))
    return _PipelineOnPaths(pipeline)


class _PipelineOnPaths:
    """A pipeline fitted on image paths, with the input check of its classifier."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.classes_ = pipeline.classes_
        self.threshold_ = pipeline[-1].threshold_

    def predict_proba(self, paths):
        return self.pipeline.predict_proba(paths)

    def check_inputs(self, paths):
        return self.pipeline[-1].check_inputs(self.pipeline[:-1].transform(paths))

    def warn_if_site_shifted(self, paths):
        _warn_if_site_shifted(self.pipeline, paths)


def _warn_if_trained_on(pipeline, paths, folder):
    """Warn when some images are ones the model was trained on (by their pixels)."""
    if pipeline[-1].training_digests_ is None or not len(paths):
        return
    seen = pipeline[-1].trained_on(pipeline[:-1].transform(paths))
    if seen.any():
        warnings.warn(
            f"{seen.sum()} of the {len(paths)} images of {folder} were used to "
            "train this model (its training or validation part): its figures on "
            "them are optimistic. Evaluate it on images it never saw.",
            UserWarning,
            stacklevel=2,
        )


#: Most images of a folder the shift check of ``predict`` and ``evaluate`` reads.
SITE_CHECK_SAMPLE = 1000


def _warn_if_site_shifted(pipeline, paths):
    """Warn when enough images are given and they differ from the model's population."""
    from ..exceptions import SiteShiftWarning
    from ..site import MIN_BATCH, check_site

    if len(paths) < MIN_BATCH or pipeline[-1].population_reference_ is None:
        return
    if len(paths) > SITE_CHECK_SAMPLE:  # a sample tells as much, in bounded memory
        import numpy as np

        chosen = np.random.default_rng(0).choice(len(paths), SITE_CHECK_SAMPLE, False)
        paths = [paths[index] for index in np.sort(chosen)]
    finding = check_site(pipeline, paths)
    if finding.shifted:
        warnings.warn(finding.message, SiteShiftWarning, stacklevel=2)


def _image_files(arguments):
    """The files named, each folder replaced by every image below it, sorted."""
    from ..datasets import find_images

    files = []
    for argument in arguments:
        if not os.path.isdir(argument):
            files.append(argument)
            continue
        found = find_images(argument)
        if not found:
            raise ValueError(f"The folder {argument} holds no image files.")
        files += found
    return files


#: Files ``predict`` and ``explain`` read and score at once: memory stays bounded
#: whatever the number of files.
FILES_AT_ONCE = 512


def _on_readable_files(work, files, args):
    """Run ``work`` on ``files`` in parts; with ``--on-error skip``, on the readable.

    ``work`` takes a list of files and returns a tuple of per-file sequences.

    Returns
    -------
    files : list of str
        The files worked on.
    result : tuple
        What ``work`` returned, joined over the parts.
    skipped : list of (str, str)
        Each unreadable file left out, with its reason, also reported on stderr.
    """
    from ..preprocessing import ImageLoadError

    kept, results, skipped = [], [], []
    for start in range(0, len(files), FILES_AT_ONCE):
        part = files[start : start + FILES_AT_ONCE]
        try:
            results.append(work(part))
            kept += part
            continue
        except ImageLoadError as error:
            failures = [(os.fspath(path), reason) for path, reason in error.failures]
        skipped += failures
        unreadable = {path for path, _ in failures}
        readable = [path for path in part if os.fspath(path) not in unreadable]
        if readable and args.on_error == "skip":
            results.append(work(readable))
            kept += readable
    if skipped and (args.on_error == "stop" or not kept):
        # Every unreadable file at once, not only those of the first part.
        raise ImageLoadError(skipped, n_images=len(files))
    for path, reason in skipped:
        print(printable(f"{PROG}: skipped {path}: {reason}"), file=sys.stderr)
    columns = zip(*results, strict=True)
    return kept, tuple(_joined(column) for column in columns), skipped


def _joined(parts):
    """Per-file sequences of the parts, one after the other."""
    import numpy as np

    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [item for part in parts for item in part]


def _rows_as_table(rows):
    """Rows as aligned columns, probabilities to 4 decimals, for reading."""
    header = ("path", "pneumonia_probability", "label", "input_check")
    cells = [
        (
            printable(row["path"]),
            "-" if row["label"] is None else f"{row['pneumonia_probability']:.4f}",
            "-" if row["label"] is None else str(row["label"]),
            row["input_check"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(3)]
    path_width, probability_width, label_width = widths
    lines = [
        f"{path:<{path_width}}  {probability:>{probability_width}}  "
        f"{label:<{label_width}}  {check}"
        for path, probability, label, check in [header, *cells]
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def run_tune(args):
    from ..datasets import load_chest_xray
    from ..metrics import make_recall_weighted_scorer
    from ..persistence import save_model
    from ..report import model_card
    from ..tuning import limit_threads, tune

    if args.n_threads is not None:
        limit_threads(args.n_threads)
    if args.output is not None:
        _check_output_path(args.output, "-o/--output")
    if args.storage is not None and args.study_name is None:
        raise UsageError(
            f"--storage {args.storage} needs --study-name: a study is found again "
            "by its name, so that a rerun or another worker continues it."
        )
    key = _model_key()
    fixed_params = {}
    if args.epochs is not None:
        fixed_params["cnn__epochs"] = args.epochs
    if args.image_size is not None:
        fixed_params["load__image_size"] = args.image_size
    if args.scoring == "roc_auc":
        # The AUC does not depend on the threshold: searching its rule would be
        # blind, so the best pipeline gets the recipe's.
        fixed_params["cnn__target_recall"] = TARGET_RECALL
    data = load_chest_xray(args.data_dir)
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
    card_path = None
    if best is not None:
        card = model_card(best, data, data_dir=args.data_dir, search=study)
        save_model(best, args.output, key=key, model_card=card)
        card_path = _model_card_path(args.output)
        _write_text(card, card_path)
    if not args.quiet:
        print(_describe_study(study, args.scoring))
        if best is not None:
            print(
                f"Saved the best pipeline, trained on all images, to {args.output}, "
                f"its model card to {card_path}."
            )
    return 0


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------


def _checked_pipeline(args, options, **params):
    """The recipe's pipeline with the options given, each checked by its estimator.

    An option out of its range is a usage error that names the option, raised
    before any data is read.
    """
    from .._compat import InvalidParameterError, validate_parameters

    pipeline = make_pipeline(**params)
    for option, parameter in options.items():
        value = getattr(args, option)
        if value is None:
            continue
        step_name, name = parameter.split("__", 1)
        step = pipeline.named_steps[step_name]
        step.set_params(**{name: value})
        try:
            validate_parameters(step)
        except InvalidParameterError as error:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"argument {flag}: {error}") from None
    return pipeline


def _fit_trained(pipeline, *args, **params):
    """Fit, refusing a network that learned nothing: a model to save must work."""
    from ..exceptions import UntrainedNetworkWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedNetworkWarning)
        try:
            pipeline.fit(*args, **params)
        except UntrainedNetworkWarning as warning:
            raise ValueError(f"Training failed: {warning} Nothing was saved.") from None


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


def _nan_to_none(value):
    """``value`` with every NaN, however deep in dicts and lists, made None."""
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _rows_as_csv(rows):
    """Rows as CSV that a spreadsheet opens safely and reads back row for row.

    A path that starts like a formula (``=``, ``+``, ``-``, ``@``, tab, carriage
    return) gets a leading apostrophe, as OWASP advises against CSV injection; a
    row whose path holds a carriage return is quoted whole, which the csv module
    does not do for a lone ``\r``.
    """
    buffer = io.StringIO()
    fields = list(rows[0])
    plain = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    quoted = csv.DictWriter(
        buffer, fieldnames=fields, lineterminator="\n", quoting=csv.QUOTE_ALL
    )
    plain.writeheader()
    for row in rows:
        row = {**row, "path": _spreadsheet_safe(row["path"])}
        (quoted if "\r" in row["path"] else plain).writerow(row)
    return buffer.getvalue()


# What spreadsheets read as the start of a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(text):
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _rows_as_json(rows):
    return json.dumps(rows, indent=2) + "\n"


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
    try:
        # An unnamed file where the system allows it: nothing is left either way.
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise ValueError(
            f"{option} {path}: cannot write in the folder {path.parent} "
            f"({error.strerror or error})."
        ) from error


def _model_key():
    """The key of ``PNEUMOCLF_MODEL_KEY`` that signs and checks model files."""
    key = os.environ.get(MODEL_KEY_VARIABLE)
    if key is None:
        return None
    key = os.fsencode(key)  # the bytes as set, whatever their encoding
    if key == b"":
        raise UsageError(
            f"{MODEL_KEY_VARIABLE} is set but empty: set it to the key that signs "
            "model files, or unset it."
        )
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(
            f"{MODEL_KEY_VARIABLE} holds {len(key)} bytes; a key that signs model "
            f"files needs at least {MIN_KEY_BYTES}, best 32 random ones (python -c "
            '"import secrets; print(secrets.token_urlsafe(32))").'
        )
    return key


def _write_text(text, output):
    """Write ``text`` to the file ``output``, or to standard output if None.

    A file name that is not valid in the file system's encoding reaches Python as
    surrogate escapes (PEP 383); it is written back as the bytes it came from.
    """
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
