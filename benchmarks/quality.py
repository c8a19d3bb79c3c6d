"""Quality of the pneumonia CNN on a patient-grouped split of real chest X-rays.

For each seed, the images are split by patient into train / val / test parts
(70 / 15 / 15, stratified, :func:`pneumoclf.model_selection.patient_split`).
Each configuration is trained on the train part (the classifier holds out its
own validation share of it for early stopping), its decision threshold is
chosen on the val part with :func:`pneumoclf.metrics.choose_threshold`, and it
is evaluated once on the test part with :func:`pneumoclf.metrics.clinical_report`.

Run from the repository root::

    python benchmarks/quality.py --seeds 0 1 2 --configs reference default

Writes ``quality.json`` (every per-seed figure, aggregates, parameters, the
command) and ``quality.md`` (a short table) into ``--out``.
"""

import argparse
import ast
import json
import os
import platform
import shlex
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pneumoclf import (
    ImageLoader,
    PneumoniaCNNClassifier,
    choose_threshold,
    clinical_report,
    load_chest_xray,
    patient_split,
)
from pneumoclf.recipes import IMAGE_SIZE, recipe_params

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "chest_xray"
SPLIT_SIZES = (0.7, 0.15, 0.15)

#: Classifier parameters of each configuration; ``random_state`` is the seed.
CONFIGS = {
    # The reference experiment: its network (the classifier's architecture
    # defaults), batch 64, mild augmentation, up to 200 epochs with early stopping.
    "reference": {
        "n_conv_blocks": 3,
        "filters": 32,
        "kernel_size": 5,
        "dense_units": 128,
        "dropout": 0.0,
        "batch_norm": False,
        "batch_size": 64,
        "epochs": 200,
        "early_stopping": True,
        "patience": 15,
        "validation_fraction": 0.1,
        "rotation": 0.03,
        "zoom": 0.1,
        "shift": 0.05,
        "contrast": 0.1,
    },
    # The recipe of ``pneumoclf train`` (pneumoclf.recipes), whatever it is when the
    # script runs: the classifier's settings of recipes.make_pipeline().
    "default": {
        name.removeprefix("cnn__"): value
        for name, value in recipe_params().items()
        if name.startswith("cnn__")
    },
    "batchnorm": {"batch_norm": True, "epochs": 200, "patience": 15},
    "plateau": {"lr_schedule": "plateau", "epochs": 200, "patience": 15},
}

#: Figures of the test report that are aggregated over seeds.
METRICS = ("roc_auc", "recall", "specificity", "precision", "fp_rate", "fn_rate")
FIGURES = (*METRICS, "threshold", "n_epochs", "fit_seconds")
#: The classifier's own default threshold, reported for comparison.
FIXED_THRESHOLD = 0.5
AT_FIXED = ("recall", "specificity", "precision", "fp_rate", "fn_rate")


def common_parser(description, seeds):
    """An argument parser with the options every quality script takes.

    Parameters
    ----------
    description : str
        The script's one-line description.
    seeds : list of int
        Default of ``--seeds``.

    Returns
    -------
    argparse.ArgumentParser
        With ``data``, ``--seeds``, ``--set`` (into ``overrides``), ``--image-size``
        and ``--out``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "data",
        nargs="?",
        type=Path,
        default=DEFAULT_DATA,
        help="chest_xray folder of {train,val}/{NORMAL,PNEUMONIA} (%(default)s)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=seeds)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a classifier parameter (repeatable)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=IMAGE_SIZE,
        help="side of the square images the network sees (%(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )
    return parser


def add_site_arguments(parser):
    """The options of the new-site benchmarks (``site.py``, ``site_levers.py``)."""
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--external",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data" / "external",
    )
    parser.add_argument("--resamples", type=int, default=10)
    parser.add_argument("--local-images", type=int, default=100)
    parser.add_argument("--min-recall", type=float, default=0.95)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )


def patients_until(groups, n_images, rng):
    """A mask of whole patients, drawn at random until ``n_images`` are taken."""
    chosen, taken = [], 0
    for patient in rng.permutation(np.unique(groups)):
        if taken >= n_images:
            break
        chosen.append(patient)
        taken += int(np.sum(groups == patient))
    return np.isin(groups, chosen)


def best_specificity(scores, pneumonia, min_recall):
    """The best specificity any threshold reaches at ``min_recall`` on these images."""
    ordered = np.sort(scores[pneumonia])
    threshold = ordered[int(np.floor(len(ordered) * (1 - min_recall)))]
    return float(np.mean(scores[~pneumonia] < threshold))


def write_results(out, name, result, table):
    """Write ``name.json`` and ``name.md`` into ``out`` and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
    print(table)


def parse_args(argv=None):
    parser = common_parser(__doc__.split("\n\n")[0], seeds=[0, 1, 2])
    parser.add_argument(
        "--configs", nargs="+", default=["reference", "default"], choices=CONFIGS
    )
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="cap the number of epochs of every config",
    )
    return parser.parse_args(argv)


def parse_overrides(items):
    """Turn ``["key=value", ...]`` into a dict, values read as Python literals.

    Parameters
    ----------
    items : list of str
        ``key=value`` strings; a value that is not a Python literal stays a string.

    Returns
    -------
    dict
        The parameters.
    """
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    return overrides


def pipeline_overrides(args):
    """``make_pipeline`` parameters of ``--image-size`` and the ``--set`` overrides."""
    return {
        "load__image_size": args.image_size,
        **{f"cnn__{k}": v for k, v in parse_overrides(args.overrides).items()},
    }


def config_params(name, overrides, max_epochs, seed):
    """Classifier parameters of one configuration for one seed.

    Parameters
    ----------
    name : str
        Key of :data:`CONFIGS`.
    overrides : dict
        Parameters that replace those of the configuration.
    max_epochs : int or None
        Upper bound on ``epochs``.
    seed : int
        ``random_state`` of the classifier.

    Returns
    -------
    dict
        Every parameter of :class:`PneumoniaCNNClassifier`, as ``get_params``
        reports them.
    """
    clf = PneumoniaCNNClassifier(**{**CONFIGS[name], **overrides})
    if max_epochs is not None:
        clf.set_params(epochs=min(clf.epochs, max_epochs))
    clf.set_params(random_state=seed)
    return clf.get_params()


def evaluate(params, X, y, groups, train, val, test):
    """Train on ``train``, choose the threshold on ``val``, report on ``test``.

    Parameters
    ----------
    params : dict
        Classifier parameters.
    X : ndarray of shape (n, h, w, 1)
        All images.
    y : ndarray of shape (n,)
        0 (NORMAL) or 1 (PNEUMONIA).
    groups : ndarray of shape (n,)
        Patient of each image; the classifier holds out its validation share
        of ``train`` by whole patients.
    train, val, test : ndarray of int
        Indices of the three parts.

    Returns
    -------
    dict
        The test report of :func:`clinical_report`, plus ``val_roc_auc``,
        ``n_epochs``, ``best_epoch`` (the epoch of the highest AUC on the
        classifier's own validation share, whose weights it keeps),
        ``history``, ``fit_seconds`` and ``classifier_threshold`` (the one the
        classifier itself applies), and ``at_fixed_threshold``: the
        threshold-dependent figures at :data:`FIXED_THRESHOLD`.
    """
    clf = PneumoniaCNNClassifier(**params)
    start = time.perf_counter()
    clf.fit(X[train], y[train], groups=groups[train])
    fit_seconds = time.perf_counter() - start
    val_score = clf.predict_proba(X[val])[:, 1]
    threshold = choose_threshold(y[val], val_score, min_recall=params["target_recall"])
    test_score = clf.predict_proba(X[test])[:, 1]
    report = clinical_report(y[test], test_score, threshold)
    fixed = clinical_report(y[test], test_score, FIXED_THRESHOLD)
    own = clinical_report(y[test], test_score, clf.decision_threshold())
    val_auc = clf.history_.get("val_auc")
    report.update(
        val_roc_auc=clinical_report(y[val], val_score, threshold)["roc_auc"],
        n_epochs=clf.n_epochs_,
        best_epoch=None if val_auc is None else int(np.argmax(val_auc)) + 1,
        history=clf.history_,
        fit_seconds=fit_seconds,
        classifier_threshold=clf.decision_threshold(),
        at_fixed_threshold={figure: fixed[figure] for figure in AT_FIXED},
        at_own_threshold={figure: own[figure] for figure in AT_FIXED},
    )
    return report


def _stats(values):
    values = np.asarray(values, dtype=float)
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
    }


def aggregate(runs):
    """Mean, standard deviation (ddof=1), min and max of each figure over seeds."""
    summary = {figure: _stats([run[figure] for run in runs]) for figure in FIGURES}
    for operating_point in ("at_fixed_threshold", "at_own_threshold"):
        summary[operating_point] = {
            figure: _stats([run[operating_point][figure] for run in runs])
            for figure in AT_FIXED
        }
    summary["classifier_threshold"] = _stats(
        [run["classifier_threshold"] for run in runs]
    )
    return summary


def _json_params(params):
    return {key: value for key, value in params.items() if key != "callbacks"}


def machine():
    """CPU, cores, memory and library versions of this machine."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split()[1])
        memory_gib = round(total_kib / 1024**2, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in ("pneumoclf", "tensorflow", "keras", "scikit-learn", "numpy")
        },
    }


def _cell(summary, figure, percent=True, digits=2):
    stats = summary[figure]
    scale = 100 if percent else 1
    return (
        f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f} "
        f"({scale * stats['min']:.{digits}f}–{scale * stats['max']:.{digits}f})"
    )


def markdown(result):
    """A short Markdown table of the aggregates: mean ± std (min–max)."""
    header = (
        "| config | ROC AUC % | recall % | specificity % | precision % "
        "| FP % of test | FN % of test | threshold | epochs | training s |"
    )
    lines = [
        "# Quality on a patient-grouped 70/15/15 split",
        "",
        f"Seeds {result['seeds']}; mean ± std (min–max) over seeds. "
        "Threshold chosen on the val part (the best specificity at the config's "
        "`target_recall`, else F2 with specificity ≥ 0.5); figures on the test "
        "part. Every training holds out its early-stopping share by patient.",
        "",
        header,
        "|---" * 10 + "|",
    ]
    for name, config in result["configs"].items():
        summary = config["summary"]
        cells = [_cell(summary, figure) for figure in METRICS]
        cells.append(_cell(summary, "threshold", percent=False, digits=3))
        cells.append(_cell(summary, "n_epochs", percent=False, digits=1))
        cells.append(_cell(summary, "fit_seconds", percent=False, digits=0))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"The same models at the fixed threshold {FIXED_THRESHOLD} "
        "(no threshold choice):",
        "",
        "| config | recall % | specificity % | precision % | FP % of test "
        "| FN % of test |",
        "|---" * 6 + "|",
    ]
    for name, config in result["configs"].items():
        fixed = config["summary"]["at_fixed_threshold"]
        cells = [_cell(fixed, figure) for figure in AT_FIXED]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    choosing = {
        name: config
        for name, config in result["configs"].items()
        if config["params"]["threshold"] == "auto"
    }
    if choosing:
        lines += [
            "",
            "The same models at the threshold each classifier chose itself on its "
            "own validation share (as `pneumoclf train` does; the val part unused):",
            "",
            "| config | threshold | recall % | specificity % | precision % "
            "| FP % of test | FN % of test |",
            "|---" * 7 + "|",
        ]
    for name, config in choosing.items():
        own = config["summary"]["at_own_threshold"]
        cells = [
            _cell(config["summary"], "classifier_threshold", percent=False, digits=3)
        ]
        cells += [_cell(own, figure) for figure in AT_FIXED]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    split = result["split_sizes"]
    info = result["machine"]
    lines += [
        "",
        "Test part sizes (images) per seed: "
        + ", ".join(f"seed {s}: {n['test']}" for s, n in split.items())
        + ".",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + ".",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    overrides = parse_overrides(args.overrides)
    data = load_chest_xray(args.data)
    start = time.perf_counter()
    X = ImageLoader(image_size=args.image_size).transform(data.paths)
    print(f"loaded {len(X)} images in {time.perf_counter() - start:.1f} s", flush=True)
    y = data.target

    result = {
        "command": shlex.join(["python", *sys.argv]),
        "data": str(args.data),
        "n_images": len(y),
        "n_patients": len(set(data.groups)),
        "image_size": args.image_size,
        "split": "patient_split(sizes=(0.7, 0.15, 0.15), random_state=seed)",
        "threshold_rule": (
            "choose_threshold(y_val, p_val, min_recall=target_recall): F2 with "
            "specificity >= 0.5 when the config sets no target_recall"
        ),
        "seeds": args.seeds,
        "overrides": overrides,
        "max_epochs": args.max_epochs,
        "machine": machine(),
        "split_sizes": {},
        "configs": {
            name: {
                "params": _json_params(
                    config_params(name, overrides, args.max_epochs, None)
                ),
                "runs": [],
            }
            for name in args.configs
        },
    }
    for seed in args.seeds:
        train, val, test = patient_split(
            data.paths, y, groups=data.groups, sizes=SPLIT_SIZES, random_state=seed
        )
        result["split_sizes"][seed] = {
            "train": len(train),
            "val": len(val),
            "test": len(test),
        }
        for name in args.configs:
            params = config_params(name, overrides, args.max_epochs, seed)
            run = evaluate(params, X, y, data.groups, train, val, test)
            run["seed"] = seed
            result["configs"][name]["runs"].append(run)
            print(
                f"seed {seed} {name:>10}: {run['n_epochs']:3d} epochs "
                f"(best {run['best_epoch']}), "
                f"{run['fit_seconds']:6.0f} s, test AUC {run['roc_auc']:.4f}, "
                f"recall {run['recall']:.4f}, specificity {run['specificity']:.4f}",
                flush=True,
            )
    for config in result["configs"].values():
        config["summary"] = aggregate(config["runs"])

    write_results(args.out, "quality", result, markdown(result))


if __name__ == "__main__":
    main()
