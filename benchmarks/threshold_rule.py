"""Choose the recall target of ``pneumoclf train`` on validation patients only.

``pneumoclf train`` picks its decision threshold on the classifier's own
validation share (10% of the training patients): the best specificity among
thresholds that reach ``target_recall`` there. This script measures how such
thresholds carry over to patients the classifier never saw, without touching
any test part:

* for each seed, the images are split by patient into train / val / test parts
  (70 / 15 / 15, as in ``quality.py``); the test part is never loaded;
* the default classifier is trained on the train part, holding out its own
  validation share by patient;
* for each candidate ``target_recall``, the threshold chosen on that share is
  applied to the val part, and recall and specificity there are reported.

Run from the repository root::

    python benchmarks/threshold_rule.py --seeds 0 1 2 3 4

Writes ``threshold_rule.json`` and ``threshold_rule.md`` into ``--out``.
"""

import shlex
import sys
import time

import numpy as np
from quality import (
    SPLIT_SIZES,
    _stats,
    common_parser,
    machine,
    parse_overrides,
    write_results,
)

from pneumoclf import (
    ImageLoader,
    PneumoniaCNNClassifier,
    choose_threshold,
    clinical_report,
    load_chest_xray,
    patient_split,
)

TARGETS = (0.97, 0.98, 0.985, 0.99, 0.995)


def parse_args(argv=None):
    parser = common_parser(__doc__.split("\n\n")[0], seeds=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--targets", nargs="+", type=float, default=list(TARGETS), metavar="RECALL"
    )
    return parser.parse_args(argv)


def own_validation_share(clf, y, groups):
    """Indices of the share a fitted classifier held out, recomputed."""
    _, share, _ = patient_split(
        np.arange(len(y)),
        y,
        groups=groups,
        sizes=(1 - clf.validation_fraction, clf.validation_fraction, 0.0),
        random_state=clf.random_state,
    )
    return share


def study_seed(seed, X, y, groups, targets, overrides):
    """Train once on the train part, then apply every rule to the val part."""
    train, val, _ = patient_split(
        np.arange(len(y)), y, groups=groups, sizes=SPLIT_SIZES, random_state=seed
    )
    first = targets[0]
    clf = PneumoniaCNNClassifier(
        **overrides, threshold="auto", target_recall=first, random_state=seed
    )
    start = time.perf_counter()
    clf.fit(X[train], y[train], groups=groups[train])
    fit_seconds = time.perf_counter() - start
    share = train[own_validation_share(clf, y[train], groups[train])]
    share_score = clf.predict_proba(X[share])[:, 1]
    val_score = clf.predict_proba(X[val])[:, 1]
    rules = {}
    for target in targets:
        threshold = choose_threshold(y[share], share_score, min_recall=target)
        if target == first and not np.isclose(threshold, clf.threshold_):
            raise RuntimeError("recomputed validation share differs from the fit")
        report = clinical_report(y[val], val_score, threshold)
        rules[str(target)] = {
            "threshold": float(threshold),
            "recall": report["recall"],
            "specificity": report["specificity"],
        }
    return {
        "seed": seed,
        "fit_seconds": fit_seconds,
        "n_epochs": clf.n_epochs_,
        "own_share_images": len(share),
        "own_share_pneumonia": int(y[share].sum()),
        "val_images": len(val),
        "val_roc_auc": clinical_report(y[val], val_score, 0.5)["roc_auc"],
        "rules": rules,
    }


def markdown(result):
    """A table of val-part recall and specificity per recall target."""
    lines = [
        "# Recall target of the threshold rule, judged on val patients",
        "",
        "Threshold chosen on the classifier's own validation share (by patient), "
        "applied to the val part of a patient-grouped 70/15/15 split; the test "
        f"parts were not used. Seeds {result['seeds']}; "
        f"{result['image_size']} x {result['image_size']} images; classifier "
        f"parameters other than the defaults: {result['overrides'] or 'none'}; "
        "mean ± std (min–max).",
        "",
        "| target recall | val recall % | val specificity % | seeds with recall ≥ 97% "
        "and specificity ≥ 90% |",
        "|---|---|---|---|",
    ]
    for target, summary in result["summary"].items():
        cells = [
            f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f} "
            f"({100 * s['min']:.2f}–{100 * s['max']:.2f})"
            for s in (summary["recall"], summary["specificity"])
        ]
        lines.append(
            f"| {target} | {cells[0]} | {cells[1]} | {summary['seeds_meeting']}"
            f"/{len(result['seeds'])} |"
        )
    per_seed = "; ".join(
        f"seed {run['seed']}: AUC {run['val_roc_auc']:.4f}, {run['n_epochs']} epochs, "
        f"{run['fit_seconds']:.0f} s"
        for run in result["runs"]
    )
    lines += ["", f"Val part, per seed: {per_seed}.", ""]
    lines += [f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    overrides = parse_overrides(args.overrides)
    data = load_chest_xray(args.data)
    X = ImageLoader(image_size=args.image_size).transform(data.paths)
    y, groups = data.target, np.asarray(data.groups)
    runs = []
    for seed in args.seeds:
        run = study_seed(seed, X, y, groups, args.targets, overrides)
        runs.append(run)
        print(
            f"seed {seed}: {run['n_epochs']} epochs, {run['fit_seconds']:.0f} s, "
            f"val AUC {run['val_roc_auc']:.4f}; "
            + ", ".join(
                f"{t}: {r['recall']:.3f}/{r['specificity']:.3f}"
                for t, r in run["rules"].items()
            ),
            flush=True,
        )
    summary = {}
    for target in map(str, args.targets):
        rules = [run["rules"][target] for run in runs]
        summary[target] = {
            "recall": _stats([rule["recall"] for rule in rules]),
            "specificity": _stats([rule["specificity"] for rule in rules]),
            "seeds_meeting": sum(
                rule["recall"] >= 0.97 and rule["specificity"] >= 0.90 for rule in rules
            ),
        }
    result = {
        "command": shlex.join(["python", *sys.argv]),
        "data": str(args.data),
        "seeds": args.seeds,
        "overrides": overrides,
        "image_size": args.image_size,
        "machine": machine(),
        "runs": runs,
        "summary": summary,
    }
    write_results(args.out, "threshold_rule", result, markdown(result))


if __name__ == "__main__":
    main()
