"""How the recipe of ``pneumoclf train`` holds up on an external set of patients.

Each recipe is trained, as ``pneumoclf train`` trains it, on every image of the
training folder (``chest_xray``: train + val; the classifier holds out its own
validation patients to stop early, calibrate and choose its threshold), once per
seed, and judged at the threshold it chose itself on an external set: a folder of
``NORMAL/`` and ``PNEUMONIA/`` X-rays of other patients, by default
``../shared/data/external`` (half of the official Kermany test split, curated apart
from the training folders). Nothing of the external set reaches the fit.

Reported per recipe and seed, on every external image and on those whose
provenance is verified (``provenance_verified`` in the set's ``MANIFEST.csv``, when
it has one): ROC AUC with its 95% patient bootstrap interval, recall and
specificity at the shipped threshold with Wilson intervals, the best specificity
any threshold reaches at recall >= 0.95, expected calibration error and Brier
score; the validation figures the model chose its threshold on; then mean, minimum
and maximum over seeds. ``--figure`` draws the score distributions of each class.

``--target-recalls`` also judges other threshold rules on the same networks: each
model's validation patients are drawn again as the classifier drew them (checked
against the figures it kept), the threshold is chosen on them at each target
recall, and the external figures are read at it.

Run from the repository root::

    python benchmarks/external.py --seeds 0 1 2 --recipes current

Writes ``external.json`` and ``external.md`` (``--name``) into ``--out``.
"""

import csv
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from quality import REPO_ROOT, common_parser, machine, pipeline_overrides, write_results
from shift import RECIPES, expected_calibration_error

from pneumoclf import load_chest_xray, patient_split
from pneumoclf.metrics import (
    choose_threshold,
    clinical_report,
    specificity_at_recall_score,
)

DEFAULT_EXTERNAL = REPO_ROOT.parent / "shared" / "data" / "external"
#: The recall a screening operating point must reach on the external set.
REQUIRED_RECALL = 0.95
#: Figures aggregated over seeds, for each subset.
FIGURES = ("roc_auc", "recall", "specificity", "best_specificity", "ece", "brier")


def verified_mask(folder, paths):
    """Which ``paths`` the set's ``MANIFEST.csv`` marks ``provenance_verified``.

    Every path counts as verified when the folder has no manifest.
    """
    manifest = Path(folder) / "MANIFEST.csv"
    if not manifest.exists():
        return np.ones(len(paths), dtype=bool)
    with manifest.open(newline="") as file:
        verified = {
            Path(row["file"]).name: row["provenance_verified"].strip() == "yes"
            for row in csv.DictReader(file)
        }
    return np.array([verified.get(Path(path).name, False) for path in paths])


def best_specificity(y, score, min_recall=REQUIRED_RECALL):
    """The best specificity of any threshold with recall >= ``min_recall``."""
    threshold = choose_threshold(y, score, min_recall=min_recall)
    return specificity_at_recall_score(y, score >= threshold, min_recall=min_recall)


def figures(y, score, threshold, groups, seed):
    """The external figures of one subset at ``threshold``."""
    report = clinical_report(
        y, score, threshold, confidence=0.95, groups=groups, random_state=seed
    )
    intervals = report["intervals"]
    return {
        "n": report["n"],
        "n_pneumonia": report["tp"] + report["fn"],
        "roc_auc": report["roc_auc"],
        "roc_auc_interval": intervals["roc_auc"],
        "recall": report["recall"],
        "recall_interval": intervals["recall"],
        "specificity": report["specificity"],
        "specificity_interval": intervals["specificity"],
        "best_specificity": best_specificity(y, score),
        "ece": expected_calibration_error(y, score),
        "brier": float(np.mean((score - y) ** 2)),
    }


def validation_part(classifier, data, seed):
    """The validation patients' indices, drawn again as ``fit`` drew them."""
    fraction = classifier.validation_fraction
    _, validation, _ = patient_split(
        np.arange(len(data.target)), data.target, groups=data.groups,
        sizes=(1 - fraction, fraction, 0.0), random_state=seed,
    )  # fmt: skip
    return validation


def _check_same_validation(classifier, y, score):
    """Refuse a validation part whose figures are not those the model kept."""
    kept = classifier.validation_report_
    called = score >= classifier.threshold_
    redrawn = {
        "n_images": len(y),
        "recall": called[y == 1].mean(),
        "specificity": 1 - called[y == 0].mean(),
    }
    if any(not np.isclose(kept[name], value) for name, value in redrawn.items()):
        raise RuntimeError(
            f"the validation part drawn again shows {redrawn}, the model kept {kept}"
        )


def other_rules(pipe, data, seed, external_y, score, verified, target_recalls):
    """External recall and specificity at the thresholds of other target recalls."""
    validation = validation_part(pipe[-1], data, seed)
    validation_score = pipe.predict_proba(data.paths[validation])[:, 1]
    _check_same_validation(pipe[-1], data.target[validation], validation_score)
    rules = {}
    for target in target_recalls:
        threshold = float(
            choose_threshold(
                data.target[validation], validation_score, min_recall=target
            )
        )
        rules[str(target)] = {"threshold": threshold}
        for subset, mask in (("all", slice(None)), ("verified", verified)):
            y, called = external_y[mask], score[mask] >= threshold
            rules[str(target)][subset] = {
                "recall": float(called[y == 1].mean()),
                "specificity": float(1 - called[y == 0].mean()),
            }
    return rules


def study(recipe, data, external, verified, seed, overrides, target_recalls=()):
    """Train ``recipe`` on every training image with ``seed``; judge it externally."""
    from pneumoclf.recipes import make_pipeline

    pipe = make_pipeline(cnn__random_state=seed, **RECIPES[recipe], **overrides)
    start = time.perf_counter()
    pipe.fit(data.paths, data.target, cnn__groups=data.groups)
    seconds = time.perf_counter() - start
    classifier = pipe[-1]
    threshold = classifier.threshold_
    score = pipe.predict_proba(external.paths)[:, 1]
    y, groups = external.target, external.groups
    return {
        "seed": seed,
        "threshold": threshold,
        "n_epochs": classifier.n_epochs_,
        "fit_seconds": seconds,
        "validation": classifier.validation_report_,
        "all": figures(y, score, threshold, groups, seed),
        "verified": figures(
            y[verified], score[verified], threshold, groups[verified], seed
        ),
        "scores": [round(float(value), 6) for value in score],
        "rules": other_rules(pipe, data, seed, y, score, verified, target_recalls),
    }


def aggregate(runs):
    """Mean, minimum and maximum over seeds of each figure, per subset."""
    summary = {}
    for subset in ("all", "verified"):
        summary[subset] = {
            name: _stats([run[subset][name] for run in runs]) for name in FIGURES
        }
    seconds = [run["fit_seconds"] for run in runs]
    summary["fit_seconds"] = {"mean": float(np.mean(seconds)), "max": max(seconds)}
    return summary


def markdown(result):
    lines = [
        "# The recipe on an external set",
        "",
        f"Trained on every image of `{result['data']}` (seeds {result['seeds']}), "
        f"judged on `{result['external']}` at each model's own threshold. "
        f"Command: `{result['command']}`. Machine: {result['machine']['cpu']}.",
        "",
        "| recipe | subset | AUC | recall | specificity | best spec. at recall "
        f">= {REQUIRED_RECALL:.2f} | ECE | Brier |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for recipe, entry in result["recipes"].items():
        for subset in ("all", "verified"):
            stats = entry["summary"][subset]
            lines.append(
                f"| {recipe} | {subset} ({entry['runs'][0][subset]['n']}) | "
                + " | ".join(
                    _spread(stats[name], percent=name != "roc_auc")
                    for name in ("roc_auc", "recall", "specificity", "best_specificity")
                )
                + f" | {stats['ece']['mean']:.3f} | {stats['brier']['mean']:.3f} |"
            )
    lines += [
        "",
        "Mean (min to max) over seeds. Per seed, with 95% intervals (AUC: patient "
        "bootstrap; recall and specificity: Wilson), on the verified subset:",
        "",
        "| recipe | seed | threshold | epochs | train s | validation recall / spec. "
        "| AUC | recall | specificity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for recipe, entry in result["recipes"].items():
        for run in entry["runs"]:
            row, validation = run["verified"], run["validation"]
            lines.append(
                f"| {recipe} | {run['seed']} | {run['threshold']:.3f} | "
                f"{run['n_epochs']} | {run['fit_seconds']:.0f} | "
                f"{validation['recall']:.1%} / {validation['specificity']:.1%} | "
                f"{_with_interval(row, 'roc_auc', percent=False)} | "
                f"{_with_interval(row, 'recall')} | "
                f"{_with_interval(row, 'specificity')} |"
            )
    lines += [
        "",
        "Other threshold rules on the same networks: the target recall on the "
        "validation patients, and the external recall / specificity (verified "
        "subset; all images), mean (min to max) over seeds:",
        "",
        "| recipe | target recall | threshold | recall (verified) | specificity "
        "(verified) | specificity (all) |",
        "|---|---|---|---|---|---|",
    ]
    for recipe, entry in result["recipes"].items():
        for target in entry["runs"][0]["rules"]:
            rules = [run["rules"][target] for run in entry["runs"]]
            lines.append(
                f"| {recipe} | {float(target):.2f} | "
                + " | ".join(
                    _spread(_stats(values), percent=percent)
                    for values, percent in (
                        ([rule["threshold"] for rule in rules], False),
                        ([rule["verified"]["recall"] for rule in rules], True),
                        ([rule["verified"]["specificity"] for rule in rules], True),
                        ([rule["all"]["specificity"] for rule in rules], True),
                    )
                )
                + " |"
            )
    return "\n".join(lines) + "\n"


def _stats(values):
    return {"mean": float(np.mean(values)), "min": min(values), "max": max(values)}


def _spread(stats, percent=True):
    form = "{:.1%}" if percent else "{:.4f}"
    return (
        f"{form.format(stats['mean'])} ({form.format(stats['min'])} to "
        f"{form.format(stats['max'])})"
    )


def _with_interval(row, name, percent=True):
    form = "{:.1%}" if percent else "{:.3f}"
    low, high = row[f"{name}_interval"]
    return f"{form.format(row[name])} [{form.format(low)}, {form.format(high)}]"


_RULE_STYLES = (":", "-.", (0, (1, 4)), (0, (3, 3)), (0, (5, 1)))


def score_figure(result, external, path):
    """Histograms of the external scores of each class, one panel per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pneumoclf.plotting import plot_score_distributions

    recipes = result["recipes"]
    figure, axes = plt.subplots(
        1, len(recipes), figsize=(5 * len(recipes), 4), squeeze=False
    )
    for ax, (recipe, entry) in zip(axes[0], recipes.items(), strict=True):
        run = entry["runs"][0]
        plot_score_distributions(
            external.target, np.array(run["scores"]), run["threshold"], ax=ax
        )
        for (target, rule), style in zip(
            run["rules"].items(), _RULE_STYLES, strict=False
        ):
            ax.axvline(
                rule["threshold"], color="grey", linestyle=style,
                label=f"target recall {float(target):.2f}: {rule['threshold']:.3f}",
            )  # fmt: skip
        ax.legend(fontsize="small")
        ax.set_title(f"{recipe}, seed {run['seed']}: external scores")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = common_parser(__doc__.split("\n\n")[0], seeds=[0, 1, 2])
    parser.add_argument(
        "--external",
        type=Path,
        default=DEFAULT_EXTERNAL,
        help="folder of NORMAL/ and PNEUMONIA/ X-rays of others (%(default)s)",
    )
    parser.add_argument("--recipes", nargs="+", default=["current"])
    parser.add_argument("--name", default="external", help="output file stem")
    parser.add_argument(
        "--target-recalls",
        nargs="*",
        type=float,
        default=[0.99, 0.98, 0.97, 0.95],
        help="threshold rules also judged on the same networks (%(default)s)",
    )
    parser.add_argument(
        "--figure", action="store_true", help="also draw the score distributions"
    )
    args = parser.parse_args(argv)
    data = load_chest_xray(args.data)
    external = load_chest_xray(args.external)
    verified = verified_mask(args.external, external.paths)
    overrides = pipeline_overrides(args)
    result = {
        "command": shlex.join(["python", "benchmarks/external.py", *sys.argv[1:]]),
        "machine": machine(),
        "data": str(args.data),
        "external": str(args.external),
        "seeds": args.seeds,
        "overrides": {k: repr(v) for k, v in overrides.items()},
        "recipes": {},
    }
    for recipe in args.recipes:
        runs = []
        for seed in args.seeds:
            run = study(
                recipe, data, external, verified, seed, overrides, args.target_recalls
            )
            runs.append(run)
            print(
                f"{recipe} seed {seed}: {runs[-1]['fit_seconds']:.0f} s, external "
                f"specificity {runs[-1]['verified']['specificity']:.1%} (verified)",
                flush=True,
            )
        result["recipes"][recipe] = {"runs": runs, "summary": aggregate(runs)}
        write_results(args.out, args.name, result, markdown(result))
    if args.figure:
        score_figure(result, external, args.out / f"{args.name}_scores.png")


if __name__ == "__main__":
    main()
