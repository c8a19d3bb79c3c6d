"""The evaluation report page and the model card.

:func:`model_card` describes a trained model in Markdown under the headings of
Mitchell et al. (2019), "Model Cards for Model Reporting": what it is for, what
it was trained on, how its threshold was chosen and what the validation part
showed. ``pneumoclf train`` writes one next to the model and into the model
file (:func:`~pneumoclf.persistence.read_model_card` reads it back).

:func:`write_report` writes one HTML page of an evaluation, its figures embedded,
that opens in any browser without network access: the figures with their
uncertainty, the worst errors with their file names, and the model card.
``pneumoclf evaluate --report-dir`` writes it.
"""

import base64
import html
import os
import platform
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._deprecation import made_private
from ._utils import escape_control_characters
from .metrics import (
    clinical_report,
    clinical_report_rows,
    referral_tradeoff,
    wilson_interval,
)
from .plotting import FIGURE_NAMES, save_evaluation_figures, worst_errors
from .recipes import EXTERNAL_FIGURES

__all__ = ["REPORT_NAME", "model_card", "write_report"]

#: The page :func:`write_report` writes in its folder.
REPORT_NAME = "index.html"

#: The statement every card and report carries.
NOT_A_MEDICAL_DEVICE = (
    "This model is not a medical device: it has not been cleared or approved by "
    "any regulator, and its output must not decide the diagnosis or the "
    "treatment of a patient. It is a research tool."
)

# Versions the card records, by distribution name.
_DISTRIBUTIONS = ("pneumoclf", "keras", "tensorflow", "scikit-learn", "numpy")

# What each figure of the page shows, by file name.
_CAPTIONS = {
    "roc_curve.png": "ROC curve with its pointwise confidence band (a bootstrap of "
    "patients) and the operating point at the model's threshold.",
    "confusion_matrix.png": "Decisions at the threshold: counts and the share of "
    "each true class (the diagonal reads as specificity and recall).",
    "score_distributions.png": "Probabilities of pneumonia of each true class; "
    "right of the dashed line is called pneumonia.",
    "calibration_curve.png": "Reliability: the share of pneumonia among images "
    "of each predicted probability (bins of equal count); calibrated "
    "probabilities lie on the diagonal.",
    "training_curves.png": "Loss and ROC AUC per epoch on the training and "
    "validation parts; the dashed line marks the epoch whose weights were kept.",
    "worst_errors.png": "The most confident mistakes: missed pneumonias with the "
    "lowest probabilities, normal images with the highest.",
}

# Figures that span the page's two columns.
_WIDE_FIGURES = ("training_curves.png", "worst_errors.png")

_CALIBRATIONS = {"platt": "Platt scaling", "temperature": "temperature scaling"}

# TRIPOD+AI (Collins et al., 2024) items the card fills, and where.
_TRIPOD_ITEMS = (
    ("Target population and intended users", "Intended use"),
    ("Data sources, eligibility, outcome definition", "Training data"),
    ("Sample size and class balance", "Training data"),
    ("Handling of missing data", "Training data"),
    ("Model type, building procedure, hyperparameters", "Model details"),
    ("Internal validation and performance measures", "Metrics"),
    ("Performance with its uncertainty", "Quantitative analyses"),
    ("Fairness and subgroups", "Factors"),
    ("Model updating and use at a new site", "Caveats and recommendations"),
    ("Software and code availability", "Model details"),
)


def model_card(estimator, data, *, data_dir=None, search=None):
    """A Markdown model card of a fitted pipeline or classifier.

    Parameters
    ----------
    estimator : Pipeline or PneumoniaCNNClassifier
        The fitted model, as ``pneumoclf train`` saves it.
    data : sklearn.utils.Bunch
        The training data, as :func:`~pneumoclf.load_chest_xray` returns it
        (``target``, ``groups``, and ``split`` when present).
    data_dir : str or os.PathLike, default=None
        The folder the data came from, named in the card.
    search : optuna.study.Study, default=None
        The study :func:`pneumoclf.tuning.tune` chose the parameters in; the
        card then describes the search (trials, best value, space, data).

    Returns
    -------
    str
        Markdown with the sections of Mitchell et al. (2019): model details,
        intended use, factors, metrics, training data, evaluation data,
        quantitative analyses, ethical considerations, caveats and
        recommendations; and the TRIPOD+AI items it fills.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the classifier is not fitted.
    """
    classifier = estimator[-1] if hasattr(estimator, "steps") else estimator
    check_is_fitted(classifier)
    sections = [
        ("Model details", _model_details(estimator, classifier)),
        *([] if search is None else [("Hyper-parameter search", _search(search))]),
        ("Intended use", _intended_use()),
        ("Factors", _factors()),
        ("Metrics", _metrics(classifier)),
        ("Training data", _training_data(classifier, data, data_dir)),
        ("Evaluation data", _evaluation_data(classifier)),
        ("Quantitative analyses", _quantitative_analyses(classifier)),
        ("Ethical considerations", _ethical_considerations()),
        ("Caveats and recommendations", _caveats()),
        (
            "TRIPOD+AI items in this card",
            [f"{item}: {section}." for item, section in _TRIPOD_ITEMS],
        ),
    ]
    lines = ["# Model card: pneumonia on pediatric chest X-rays", ""]
    lines += [f"**{NOT_A_MEDICAL_DEVICE}**", ""]
    for heading, items in sections:
        lines += [f"## {heading}", ""] + [f"- {item}" for item in items] + [""]
    return "\n".join(lines)


def _search(study):
    """How an Optuna study chose the parameters, from what it recorded."""
    states = Counter(trial.state.name for trial in study.trials)
    attrs = study.user_attrs
    lines = [
        f"Parameters chosen by the Optuna study {study.study_name!r} of "
        f"{len(study.trials)} trials ({states['COMPLETE']} complete, "
        f"{states['PRUNED']} pruned, {states['FAIL']} failed), seed "
        f"{attrs.get('random_state')}, scoring {attrs.get('scoring', 'unknown')}."
    ]
    if states["COMPLETE"]:
        best = study.best_trial
        lines.append(
            f"Best trial #{best.number}: validation score {best.value:.4f}; "
            + "; ".join(f"{name} = {value}" for name, value in best.params.items())
            + ". Then trained on all training images with these parameters."
        )
    data = attrs.get("data")
    if data is not None:
        lines.append(
            f"Each trial trained on {data['n_train']} images and was scored on a "
            f"patient-grouped validation part of {data['n_validation']} images of "
            f"the {data['n_images']} ({data['n_pneumonia']} pneumonia, "
            f"{data['n_patients']} patients; file list SHA-256 "
            f"{data['files_sha256'][:16]}): the best score is optimistic, as it "
            "was chosen on that part."
        )
    space = attrs.get("search_space")
    if isinstance(space, dict):
        lines.append(
            "Searched: " + "; ".join(f"{n}: {d}" for n, d in space.items()) + "."
        )
    fixed = attrs.get("fixed_params")
    if fixed:
        lines.append(
            "Fixed: " + "; ".join(f"{n} = {v}" for n, v in fixed.items()) + "."
        )
    return lines


def _model_details(estimator, classifier):
    size = "x".join(str(side) for side in classifier.image_shape_[:2])
    if hasattr(estimator, "steps"):  # the steps' parameters, by set_params name
        params = estimator.get_params(deep=True)
        settings = {name: value for name, value in params.items() if "__" in name}
    else:
        settings = classifier.get_params()
    return [
        f"Card written on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        "model trained with pneumoclf, an open-source package "
        "(https://pypi.org/project/pneumoclf/).",
        f"A convolutional network ({classifier.n_conv_blocks} blocks of "
        f"{classifier.kernel_size}x{classifier.kernel_size} convolutions with "
        f"{classifier.filters} filters, a dense layer of {classifier.dense_units}) "
        f"on {size} grayscale images scaled to [0, 1], giving one probability of "
        "pneumonia.",
        f"Seed (`random_state`): {classifier.random_state}.",
        f"Versions: {_versions()}.",
        "Parameters: "
        + "; ".join(
            _as_code(f"{name}={value!r}") for name, value in sorted(settings.items())
        )
        + ".",
    ]


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    found = [f"Python {platform.python_version()}"]
    for name in _DISTRIBUTIONS:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def _intended_use():
    return [
        "Primary use: research on the detection of pneumonia on frontal chest "
        "X-rays of children, of the population the training data stands for.",
        "Intended users: researchers and engineers who evaluate or build such "
        "models; a clinician reads its output only as a second opinion.",
        NOT_A_MEDICAL_DEVICE,
        "Out of scope: adults, lateral views, other modalities, other findings "
        "(tuberculosis, COVID-19, effusions), and sites whose images were never "
        "used to check its threshold.",
    ]


def _factors():
    return [
        "Performance depends on the site, the device and exposure, the age of "
        "the child and the kind of pneumonia (bacterial or viral); none of "
        "these is recorded with the images, so no subgroup was evaluated here.",
        "Fairness across sex, age or ethnicity was not assessed: the images "
        "carry no such attributes.",
        "`benchmarks/shift.py` measures the recipe under acquisition shifts, "
        "held-out series and other prevalences.",
    ]


def _metrics(classifier):
    if classifier.threshold != "auto":
        rule = f"a fixed threshold of {classifier.threshold}"
    elif classifier.validation_report_ is None:
        rule = (
            f"none applied: the automatic rule ({_automatic_rule(classifier)}) had "
            "no validation part to run on, so the default threshold was kept"
        )
    else:
        rule = _automatic_rule(classifier)
    calibration = (
        f"{_CALIBRATIONS.get(classifier.calibration, 'a calibration')} fitted on "
        "the validation part"
        if classifier.calibration_ is not None
        else "none (the network's own probabilities)"
    )
    return [
        f"Threshold rule: {rule}, because a missed pneumonia costs more than a "
        f"false alarm; the threshold in use is {classifier.threshold_:.4f}.",
        f"Calibration of the probabilities: {calibration}.",
        "Measures: recall (sensitivity), specificity and ROC AUC, with 95% "
        "Wilson intervals for the proportions.",
    ]


def _automatic_rule(classifier):
    """How ``threshold="auto"`` chooses, as :func:`~pneumoclf.choose_threshold` does."""
    if classifier.target_recall is not None:
        return (
            "the threshold with the best specificity among those whose recall on "
            f"the validation part reaches {classifier.target_recall:.0%}"
        )
    return (
        "the threshold with the best F2 score (recall weighted over precision) "
        "among those with a specificity of at least 50% on the validation part"
    )


def _training_data(classifier, data, data_dir):
    target = np.asarray(data.target)
    groups = np.asarray(data.groups)
    where = f" from {_as_code(data_dir)}" if data_dir is not None else ""
    splits = sorted(set(data.get("split", [])) - {""})
    return [
        f"{len(target)} images{where}"
        + (f" (folders: {', '.join(map(_as_code, splits))})" if splits else "")
        + f": NORMAL {_count(target, 0, groups)}, PNEUMONIA "
        f"{_count(target, 1, groups)}.",
        *_collapsed_grouping(target, groups),
        "Outcome: the label of the folder each image lies in (NORMAL, "
        "PNEUMONIA), as the data's graders gave it.",
        "Every image was read; a file that cannot be read stops training with its "
        "name, so no image was silently left out or imputed.",
        f"Class weights: {classifier.class_weight}.",
    ]


def _as_code(text):
    """``text``, a name from a file or folder, as a Markdown code span.

    Shown as written and never read as Markdown: line breaks and other control
    characters become escapes such as ``\\x0a``, and backticks, which would end
    the span, quotes.
    """
    return "`" + escape_control_characters(text).replace("`", "'") + "`"


def _collapsed_grouping(target, groups):
    """A warning line when a class's several images all name one patient."""
    collapsed = [
        name
        for label, name in enumerate(("NORMAL", "PNEUMONIA"))
        if (target == label).sum() > 1 and len(np.unique(groups[target == label])) == 1
    ]
    if not collapsed:
        return []
    return [
        f"**Warning:** every {' and every '.join(collapsed)} image names the same "
        "patient: the grouping by patient collapsed (de-identified DICOM files often "
        "share one PatientID), so the validation part was not held out by patient "
        "and its figures may be optimistic."
    ]


def _count(target, label, groups):
    of_class = target == label
    n_patients = len(np.unique(groups[of_class]))
    return f"{int(of_class.sum())} images of {n_patients} patients"


def _evaluation_data(classifier):
    report = classifier.validation_report_
    if report is None:
        return [
            "No validation part was held out, so nothing measured this model "
            "on patients it was not trained on: evaluate it before any use."
        ]
    patients = (
        f" of {report['n_patients']} patients, none of them in the training part"
        if report["n_patients"] is not None
        else " (split by image, not by patient: its figures are optimistic)"
    )
    return [
        f"Validation part: {classifier.validation_fraction:.0%} of the training "
        f"data held out, {report['n_images']} images{patients}, "
        f"{report['n_pneumonia']} of them pneumonia."
        + _what_validation_chose(classifier),
        "Figures on it are internal: the same sites and curation as the "
        "training images. Evaluate on a separately curated set with "
        "`pneumoclf evaluate MODEL DATA_DIR --report-dir DIR`.",
    ]


def _what_validation_chose(classifier):
    chosen = [
        name
        for name, chose in (
            ("the epoch whose weights were kept", classifier.early_stopping),
            ("the calibration", classifier.calibration_ is not None),
            ("the threshold", classifier.chosen_threshold_ is not None),
        )
        if chose
    ]
    if not chosen:
        return ""
    listed = ", ".join(chosen[:-1]) + (" and " if len(chosen) > 1 else "") + chosen[-1]
    return f" It chose {listed}."


def _quantitative_analyses(classifier):
    report = classifier.validation_report_
    items = [f"Epochs run: {classifier.n_epochs_}."]
    if report is None:
        return items
    n_pneumonia = report["n_pneumonia"]
    n_normal = report["n_images"] - n_pneumonia
    found = round(report["recall"] * n_pneumonia)
    cleared = round(report["specificity"] * n_normal)
    return [
        *items,
        f"On the validation part at threshold {report['threshold']:.4f}: recall "
        f"{_share(found, n_pneumonia)}, specificity {_share(cleared, n_normal)}, "
        f"ROC AUC {report['roc_auc']:.4f}.",
    ]


def _share(successes, n):
    low, high = wilson_interval(successes, n)
    return f"{successes / n:.1%} ({successes} of {n}; 95% CI {low:.1%} to {high:.1%})"


def _ethical_considerations():
    return [
        "A false negative (a missed pneumonia in a child) may delay treatment; "
        "the threshold favours recall, so false alarms are the price.",
        "A network can learn shortcuts (text markers, devices, the site) instead "
        "of the lungs: check its heat maps with `pneumoclf explain`.",
        "The training images must have been collected with consent and "
        "de-identified. The model file keeps no image, path or patient "
        "identifier (only 64-bit digests of the training images' pixels, which "
        "cannot be turned back into images); but the evaluation report page of "
        "`pneumoclf evaluate --report-dir` shows the worst errors as small images "
        "with their file paths, and predictions list file paths: treat both as "
        "patient data.",
    ]


def _caveats():
    return [
        "Specificity measured on one population often falls at another site or "
        "on a differently curated set, while recall holds better: a threshold "
        "chosen here flags more healthy children elsewhere.",
        _external_figures(),
        "At a new site, collect local labelled X-rays, check the model on them "
        "(`pneumoclf evaluate MODEL local/ --json`) and choose the threshold "
        "again (see the 'At a new site' section of the threshold guide).",
        "A validation part of a few hundred images knows recall to a few "
        "percentage points only: read the intervals.",
    ]


def _external_figures():
    every, verified = EXTERNAL_FIGURES["all"], EXTERNAL_FIGURES["verified"]

    def figure(name, row, percent=True):
        mean, low, high = (f"{v:.1%}" if percent else f"{v:.3f}" for v in row[name])
        return f"{mean} (95% intervals of the seeds from {low} to {high})"

    return (
        "The recipe of `pneumoclf train`, trained on the Kermany et al. (2018) "
        "training folders with three seeds, showed at its own thresholds on a "
        "separately curated set of the same centre (half of its official test "
        f"split, {every['n_images']} images of {every['n_patients']} patients): "
        f"recall {figure('recall', every)}, specificity "
        f"{figure('specificity', every)}, ROC AUC "
        f"{figure('roc_auc', every, percent=False)}; on the "
        f"{verified['n_images']} images of verified provenance, specificity "
        f"{figure('specificity', verified)}. These describe the recipe, not this "
        "model."
    )


def write_report(
    folder,
    y_true,
    y_score,
    threshold,
    *,
    paths=None,
    groups=None,
    history=None,
    kept_epoch=None,
    report=None,
    model_card=None,
    title="Evaluation report",
    n_worst=4,
):
    """Write an evaluation as one HTML page, ``folder/index.html``, and its figures.

    The page needs no network access: its figures are embedded, and also
    written beside it as PNG files
    (:func:`~pneumoclf.plotting.save_evaluation_figures`).

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing.
    y_true, y_score, threshold
        0/1 labels, pneumonia probabilities and the decision threshold.
    paths : sequence of str, default=None
        The image file of each score: the worst errors are shown with their names.
    groups : array-like of shape (n,), default=None
        The patient of each image, for the intervals.
    history : dict of list of float, default=None
        A classifier's ``history_``, for the training curves.
    kept_epoch : int, default=None
        The epoch whose weights were kept (:func:`~pneumoclf.plotting.kept_epoch`).
    report : dict, default=None
        A :func:`~pneumoclf.metrics.clinical_report` with intervals; computed
        (95%, patients resampled, seed 0) when None.
    model_card : str, default=None
        Markdown of a model card, shown below the figures.
    title : str, default="Evaluation report"
        The page's heading.
    n_worst : int, default=4
        Most false negatives and false positives shown, in the figure and the
        table.

    Returns
    -------
    pathlib.Path
        The page written.
    """
    folder = Path(folder)
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    if report is None:
        report = clinical_report(
            y_true, y_score, threshold, confidence=0.95, groups=groups, random_state=0
        )
    folder.mkdir(parents=True, exist_ok=True)
    # Everything is drawn in a staging folder first: a report that fails part-way
    # leaves the folder's earlier report whole, never mixed with this one.
    staging = Path(tempfile.mkdtemp(prefix=f".{REPORT_NAME}.", dir=folder))
    try:
        figures = save_evaluation_figures(
            staging,
            y_true,
            y_score,
            threshold,
            history,
            groups=groups,
            kept=kept_epoch,
            paths=paths,
            n_worst=n_worst,
        )
        body = [
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="warning">{html.escape(NOT_A_MEDICAL_DEVICE)}</p>',
            "<h2>Figures at the threshold</h2>",
            _metrics_table(report),
            '<div class="figures">',
            *(_figure(path) for path in figures),
            "</div>",
            _referral_table(y_true, y_score, threshold),
        ]
        if paths is not None:
            body.append(_errors_table(paths, y_true, y_score, threshold, n_worst))
        body.append('<section class="card">')
        body.append(
            _markdown_to_html(model_card)
            if model_card is not None
            else "<h2>Model card</h2><p>The model file carries no model card.</p>"
        )
        body.append("</section>")
        staged_page = staging / REPORT_NAME
        staged_page.write_text(
            _PAGE.format(title=html.escape(title), body="\n".join(body)),
            encoding="utf-8",
        )
        _move_into_place(staging, [*figures, staged_page], folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / REPORT_NAME


def _metrics_table(report):
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td>"
        f"<td>{html.escape(note)}</td></tr>"
        for label, value, note in clinical_report_rows(report)
    )
    return f'<table class="metrics">{rows}</table>'


def _referral_table(y_true, y_score, threshold):
    """What each refer band around the threshold costs and gives."""
    rows = "".join(
        f"<tr><td>{row['refer_band']:g}</td>"
        f"<td>{row['low']:.4f} to {row['high']:.4f}</td>"
        f"<td>{row['refer_rate']:.1%}</td><td>{_percent_or_na(row['recall'])}</td>"
        f"<td>{_percent_or_na(row['specificity'])}</td></tr>"
        for row in referral_tradeoff(y_true, y_score, threshold)
    )
    return (
        "<h2>Refer band</h2><p>Images whose probability lies in a band around the "
        "threshold can go to a reader instead of getting a label "
        "(<code>--refer-band</code>): the share referred, and the figures of the "
        "images labelled.</p>"
        '<table class="referral"><tr><th>band</th><th>probabilities referred</th>'
        "<th>referred</th><th>recall, labelled</th><th>specificity, labelled</th>"
        f"</tr>{rows}</table>"
    )


def _percent_or_na(value):
    return "n/a" if np.isnan(value) else f"{value:.1%}"


def _move_into_place(staging, written, folder):
    """Replace the folder's report with the staged one, the page last.

    Figures of an earlier report that this one does not draw are removed, so that
    the folder never holds figures of two runs.
    """
    drawn = {path.name for path in written}
    for name in FIGURE_NAMES:
        if name not in drawn:
            (folder / name).unlink(missing_ok=True)
    for path in written:
        os.replace(path, folder / path.name)


def _figure(path):
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(_CAPTIONS[path.name])
    wide = ' class="wide"' if path.name in _WIDE_FIGURES else ""
    return (
        f'<figure{wide}><img src="data:image/png;base64,{encoded}" '
        f'alt="{html.escape(path.stem.replace("_", " "))}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _errors_table(paths, y_true, y_score, threshold, n_worst):
    paths = [str(path) for path in paths]
    rows = []
    for kind, chosen in zip(
        ("false negative", "false positive"),
        worst_errors(y_true, y_score, threshold, n_worst),
        strict=True,
    ):
        rows += [
            f"<tr><td>{kind}</td><td>{y_score[i]:.4f}</td>"
            f"<td><code>{html.escape(paths[i])}</code></td></tr>"
            for i in chosen
        ]
    if not rows:
        return "<p>No false negative and no false positive at this threshold.</p>"
    return (
        "<h2>Worst errors</h2>"
        '<table class="errors"><tr><th>error</th><th>probability</th>'
        f"<th>file</th></tr>{''.join(rows)}</table>"
    )


def _markdown_to_html(text):
    """HTML of the Markdown that :func:`model_card` writes.

    Headings (``#`` to ``###``), paragraphs, ``-`` lists, ``**bold**`` and
    ```code```; everything else is escaped, so no markup of the text reaches
    the page.

    Parameters
    ----------
    text : str
        Markdown of that subset.

    Returns
    -------
    str

    Examples
    --------
    >>> from pneumoclf.report import _markdown_to_html
    >>> print(_markdown_to_html("## Use\\n\\n- research <only>\\n- `code`"))
    <h2>Use</h2>
    <ul>
    <li>research &lt;only&gt;</li>
    <li><code>code</code></li>
    </ul>
    """
    out, paragraph, in_list = [], [], False

    def flush_paragraph():
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for line in text.splitlines():
        heading = re.match(r"(#{1,3}) (.*)", line)
        item = line.startswith("- ")
        if in_list and not item:
            out.append("</ul>")
            in_list = False
        if heading or item or not line.strip():
            flush_paragraph()
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item:
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            paragraph.append(line.strip())
    flush_paragraph()
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def _inline(text):
    """HTML of one line: code spans shown as written, ``**bold**`` outside them."""
    pieces = []
    for piece in re.split(r"(`[^`]+`)", text):
        if len(piece) > 1 and piece[0] == piece[-1] == "`":
            pieces.append(f"<code>{html.escape(piece[1:-1], quote=False)}</code>")
        else:
            escaped = html.escape(piece, quote=False)
            pieces.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))
    return "".join(pieces)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 66rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }}
.warning {{ background: #fff4e5; border-left: 4px solid #e67700; padding: .6rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ text-align: left; padding: .25rem .8rem; border-bottom: 1px solid #ddd; }}
table.metrics td:nth-child(2) {{ text-align: right;
                                 font-variant-numeric: tabular-nums; }}
.figures {{ display: grid; gap: 1rem;
            grid-template-columns: repeat(auto-fit, minmax(28rem, 1fr)); }}
figure {{ margin: 0; }}
figure.wide {{ grid-column: 1 / -1; }}
img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
figcaption {{ color: #555; font-size: .9rem; }}
code {{ overflow-wrap: anywhere; }}
.card {{ border-top: 2px solid #ccc; margin-top: 2rem; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def __getattr__(name):
    return made_private(__name__, name, {"markdown_to_html": _markdown_to_html})
