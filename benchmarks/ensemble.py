"""Whether averaging networks trained with different seeds pays, on val patients.

For each seed, the images are split by patient into train / val / test parts
(70 / 15 / 15, as in ``quality.py``); the test part is never loaded. ``--members``
classifiers of the ``pneumoclf train`` recipe are trained on the train part, member
``i`` with ``random_state = seed + 1000 * i`` (its weights, its shuffling and the
validation share it holds out), and the val part is scored by each member and by
the mean of their probabilities. Besides the ROC AUC, the table gives the
specificity at 99% recall with the threshold chosen on the val part itself: a
comparison of the scores, not a rule one could deploy.

Run from the repository root::

    python benchmarks/ensemble.py --seeds 0 1 2 --members 3

Writes ``ensemble.json`` and ``ensemble.md`` into ``--out``.
"""

import shlex
import sys
import time

import numpy as np
from quality import (
    CONFIGS,
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
from pneumoclf.recipes import TARGET_RECALL as RECALL


def parse_args(argv=None):
    parser = common_parser(__doc__.split("\n\n")[0], seeds=[0, 1, 2])
    parser.add_argument("--members", type=int, default=3)
    return parser.parse_args(argv)


def score_quality(y, score):
    """ROC AUC, and specificity at ``RECALL`` with the threshold chosen on ``y``."""
    threshold = choose_threshold(y, score, min_recall=RECALL)
    report = clinical_report(y, score, threshold)
    return {"roc_auc": report["roc_auc"], "specificity": report["specificity"]}


def study_seed(seed, X, y, groups, n_members, overrides):
    """Train the members on the train part of one split; score its val part."""
    train, val, _ = patient_split(
        np.arange(len(y)), y, groups=groups, sizes=SPLIT_SIZES, random_state=seed
    )
    members, scores = [], []
    for member in range(n_members):
        clf = PneumoniaCNNClassifier(
            **{**CONFIGS["default"], **overrides}, random_state=seed + 1000 * member
        )
        start = time.perf_counter()
        clf.fit(X[train], y[train], groups=groups[train])
        fit_seconds = time.perf_counter() - start
        scores.append(clf.predict_proba(X[val])[:, 1])
        members.append(
            {
                "random_state": clf.random_state,
                "fit_seconds": fit_seconds,
                "n_epochs": clf.n_epochs_,
                **score_quality(y[val], scores[-1]),
            }
        )
        print(f"seed {seed}, member {member}: {members[-1]}", flush=True)
    return {
        "seed": seed,
        "val_images": len(val),
        "members": members,
        "ensemble": score_quality(y[val], np.mean(scores, axis=0)),
    }


def markdown(result):
    """A table of each seed's single networks against their mean."""
    lines = [
        "# Ensembles of seeds, judged on val patients",
        "",
        f"{result['members']} networks of the `pneumoclf train` recipe per split "
        "(patient-grouped 70/15/15; test parts not used), "
        f"{result['image_size']} x {result['image_size']} images, parameters "
        f"{result['params']}. Specificity at {100 * RECALL:.0f}% recall with the "
        "threshold chosen on the val part itself.",
        "",
        "| seed | members' AUC % | ensemble AUC % | members' specificity % "
        "| ensemble specificity % | training s (all members) |",
        "|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        members = run["members"]
        aucs = ", ".join(f"{100 * m['roc_auc']:.2f}" for m in members)
        specs = ", ".join(f"{100 * m['specificity']:.2f}" for m in members)
        seconds = sum(m["fit_seconds"] for m in members)
        lines.append(
            f"| {run['seed']} | {aucs} | {100 * run['ensemble']['roc_auc']:.2f} "
            f"| {specs} | {100 * run['ensemble']['specificity']:.2f} "
            f"| {seconds:.0f} |"
        )
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    overrides = parse_overrides(args.overrides)
    data = load_chest_xray(args.data)
    X = ImageLoader(image_size=args.image_size).transform(data.paths)
    y, groups = data.target, np.asarray(data.groups)
    runs = [
        study_seed(seed, X, y, groups, args.members, overrides) for seed in args.seeds
    ]
    single = [member for run in runs for member in run["members"]]
    result = {
        "command": shlex.join(["python", *sys.argv]),
        "data": str(args.data),
        "seeds": args.seeds,
        "members": args.members,
        "params": {**CONFIGS["default"], **overrides},
        "image_size": args.image_size,
        "machine": machine(),
        "runs": runs,
        "summary": {
            "member_roc_auc": _stats([m["roc_auc"] for m in single]),
            "ensemble_roc_auc": _stats([run["ensemble"]["roc_auc"] for run in runs]),
            "member_specificity": _stats([m["specificity"] for m in single]),
            "ensemble_specificity": _stats(
                [run["ensemble"]["specificity"] for run in runs]
            ),
        },
    }
    write_results(args.out, "ensemble", result, markdown(result))


if __name__ == "__main__":
    main()
