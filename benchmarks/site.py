"""At a new site: adaptation on a few labelled local cases, and the shift check.

For each ``--seeds`` seed, the recipe of ``pneumoclf train`` is trained (network
seed too) on the training part of a patient-grouped split of the training folder
(by default ``chest_xray``; 80% of the patients, split seed). An external folder
(by default ``../shared/data/external``, half of the official Kermany test split)
plays the new site:

* adaptation: ``--resamples`` times, whole external patients are drawn until
  ``--local-images`` images are labelled; :func:`pneumoclf.site.adapt_to_site`
  recalibrates and chooses the threshold on them, and the rest of the external
  images judge it (recall, specificity), beside the model's own threshold and the
  figures the adaptation promised (cross-fitted);
* shift check: :func:`pneumoclf.site.check_site` on every external image; on
  ``--batches`` batches of as many images drawn by patient from the held-out
  internal patients (how often it fires where nothing shifted); and on the
  held-out internal images after acquisition shifts of ``benchmarks/shift.py``.

The figures of each network are reported, and those of all resamples of all
networks together: two trainings of the recipe rank the external images
differently enough to move them by several points.

Run from the repository root::

    python benchmarks/site.py --seeds 0 1 2 --model-dir /tmp/site_models

``--model-dir`` keeps the trained models as ``seed<N>.pneumoclf`` (and reuses
those that exist; they must come from the same seed and data). Writes
``site.json`` and ``site.md``.
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from quality import (
    add_site_arguments,
    best_specificity,
    machine,
    patients_until,
    write_results,
)
from shift import SHIFTS, shifted_copies

from pneumoclf import load_chest_xray, patient_split
from pneumoclf.exceptions import InputCheckWarning, SiteShiftWarning
from pneumoclf.persistence import load_model, save_model
from pneumoclf.recipes import make_pipeline
from pneumoclf.site import adapt_to_site, check_site

#: Acquisition shifts the held-out internal images are checked under.
CHECKED_SHIFTS = ("crop 10%", "gamma 0.7", "contrast 0.7", "border 10%", "blur")


def parse_args(argv=None):
    # Without abbreviations, the former --seed and --model are refused, not read as
    # --seeds and --model-dir.
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    add_site_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--model-dir", type=Path, help="folder of models to keep or reuse"
    )
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--name", default="site")
    return parser.parse_args(argv)


def trained_pipeline(data, train, seed, model_path):
    """The recipe fitted on ``train``, or the one kept at ``model_path``."""
    if model_path is not None and model_path.exists():
        return load_model(model_path), None
    pipe = make_pipeline(cnn__random_state=seed)
    start = time.perf_counter()
    pipe.fit(data.paths[train], data.target[train], cnn__groups=data.groups[train])
    seconds = time.perf_counter() - start
    if model_path is not None:
        save_model(pipe, model_path)
    return pipe, seconds


def judged(classifier, X, y):
    """Recall and specificity of ``classifier`` at its own threshold."""
    called = classifier.predict_proba(X)[:, 1] >= classifier.threshold_
    pneumonia = y == classifier.classes_[1]
    return float(called[pneumonia].mean()), float((~called[~pneumonia]).mean())


def adaptation_study(classifier, X, y, groups, args):
    rows = []
    for resample in range(args.resamples):
        local = patients_until(
            groups, args.local_images, np.random.default_rng(resample)
        )
        rest = ~local
        adapted = adapt_to_site(
            classifier, X[local], y[local], groups=groups[local],
            min_recall=args.min_recall,
        )  # fmt: skip
        record = adapted.adaptations_[-1]
        before = judged(classifier, X[rest], y[rest])
        after = judged(adapted, X[rest], y[rest])
        rows.append(
            {
                "resample": resample,
                "n_local": int(local.sum()),
                "n_local_pneumonia": record["n_pneumonia"],
                "n_rest": int(rest.sum()),
                "threshold": record["threshold"],
                "recall_before": before[0],
                "specificity_before": before[1],
                "recall": after[0],
                "specificity": after[1],
                "expected_recall": record["recall"],
                "expected_specificity": record["specificity"],
            }
        )
    return rows


def batch_checks(classifier, X, y, groups, n_images, args):
    rows = []
    for batch in range(args.batches):
        mask = patients_until(groups, n_images, np.random.default_rng(1000 + batch))
        finding = check_site(classifier, X[mask])
        rows.append(
            {
                "batch": batch,
                "n_images": int(mask.sum()),
                "shifted": finding.shifted,
                "p_value": finding.p_value,
                "estimated_prevalence": finding.estimated_prevalence,
                "prevalence": float(np.mean(y[mask] == classifier.classes_[1])),
            }
        )
    return rows


def shifted_checks(pipe, paths, n_images):
    rows = []
    rng = np.random.default_rng(0)
    sample = list(rng.choice(paths, size=min(n_images, len(paths)), replace=False))
    with tempfile.TemporaryDirectory() as folder:
        for name in CHECKED_SHIFTS:
            copies = shifted_copies(sample, SHIFTS[name], Path(folder) / str(len(rows)))
            finding = check_site(pipe, copies)
            rows.append(
                {
                    "shift": name,
                    "shifted": finding.shifted,
                    "p_value": finding.p_value,
                    "estimated_prevalence": finding.estimated_prevalence,
                }
            )
    return rows


def summary(values):
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "min": float(values.min()),
            "max": float(values.max())}  # fmt: skip


#: What each resample of the adaptation measures.
ADAPTATION_FIGURES = (
    "recall", "specificity", "recall_before", "specificity_before",
    "expected_recall", "expected_specificity", "oracle",
)  # fmt: skip


def adaptation_summary(rows):
    return {name: summary([row[name] for row in rows]) for name in ADAPTATION_FIGURES}


def spread(figure):
    return f"{figure['mean']:.1%} ({figure['min']:.1%} to {figure['max']:.1%})"


def adaptation_lines(label, a):
    return (
        f"| {label} | {spread(a['recall_before'])} | "
        f"{spread(a['specificity_before'])} | {spread(a['recall'])} | "
        f"{spread(a['specificity'])} | {a['expected_recall']['mean']:.1%} / "
        f"{a['expected_specificity']['mean']:.1%} | {spread(a['oracle'])} |"
    )


def check_lines(network, n_external):
    seed, ext = network["seed"], network["external_check"]
    fired = "yes" if ext["shifted"] else "no"
    lines = [
        f"| {seed} | external | {ext['n_images']} | {fired} | {ext['p_value']:.4f} "
        f"| {ext['estimated_prevalence']:.3f} | {ext['prevalence']:.3f} |"
    ]
    internal = network["internal_checks"]
    n_fired = sum(row["shifted"] for row in internal)
    errors = [abs(r["estimated_prevalence"] - r["prevalence"]) for r in internal]
    lines.append(
        f"| {seed} | {len(internal)} internal batches (held-out patients) | "
        f"{internal[0]['n_images']} each | {n_fired} of {len(internal)} | "
        f"min {min(r['p_value'] for r in internal):.4f} | error at most "
        f"{max(errors):.3f} | |"
    )
    for row in network["shifted_checks"]:
        lines.append(
            f"| {seed} | internal, {row['shift']} | {n_external} | "
            f"{'yes' if row['shifted'] else 'no'} | {row['p_value']:.4f} | "
            f"{row['estimated_prevalence']:.3f} | |"
        )
    return lines


def markdown(result):
    networks = result["networks"]
    seeds = ", ".join(str(network["seed"]) for network in networks)
    lines = [
        "# At a new site",
        "",
        f"Command: `{result['command']}`. Machine: {result['machine']['cpu']}. "
        f"Models: the recipe trained on the training part of a patient split of "
        f"`{result['data_dir']}` (80% of patients, {networks[0]['n_train']} images "
        f"at seed {networks[0]['seed']}; split and network seeds {seeds}); the new "
        f"site: `{result['external']}` ({result['n_external']} images).",
        "",
        f"## Adaptation on {result['local_images']} labelled local images "
        f"({result['resamples']} resamples by patient per network, recall target "
        f"{result['min_recall']:g}; judged on the rest)",
        "",
        "Mean (min to max) over resamples. The bound is the best specificity any "
        f"threshold reaches at recall >= {result['min_recall']:g} on the rest.",
        "",
        "| network seed | own threshold: recall | own threshold: specificity | "
        "adapted: recall | adapted: specificity | promised (cross-fitted) recall / "
        "specificity | bound |",
        "|---|---|---|---|---|---|---|",
        *(adaptation_lines(n["seed"], n["adaptation"]) for n in networks),
        adaptation_lines("all", result["adaptation"]),
        "",
        "## Shift check",
        "",
        "| network seed | batch | images | fired | p-value | estimated prevalence | "
        "true prevalence |",
        "|---|---|---|---|---|---|---|",
    ]
    for network in networks:
        lines += check_lines(network, result["n_external"])
    return "\n".join(lines) + "\n"


def oracle_specificity(classifier, X, y, groups, args):
    values = []
    for resample in range(args.resamples):
        rest = ~patients_until(groups, args.local_images,
                               np.random.default_rng(resample))  # fmt: skip
        scores = classifier.predict_proba(X[rest])[:, 1]
        pneumonia = y[rest] == classifier.classes_[1]
        values.append(best_specificity(scores, pneumonia, args.min_recall))
    return values


def network_study(data, external, seed, args):
    """Train (or reuse) the network of ``seed``, adapt it to the site, check shift."""
    train, _, test = patient_split(
        data.paths, data.target, groups=data.groups, sizes=(0.8, 0.0, 0.2),
        random_state=seed,
    )  # fmt: skip
    model_path = None
    if args.model_dir is not None:
        args.model_dir.mkdir(parents=True, exist_ok=True)
        model_path = args.model_dir / f"seed{seed}.pneumoclf"
    pipe, seconds = trained_pipeline(data, train, seed, model_path)
    loader, classifier = pipe[0], pipe[-1]
    X_external = loader.transform(external.paths)
    y, groups = external.target, external.groups
    rows = adaptation_study(classifier, X_external, y, groups, args)
    oracles = oracle_specificity(classifier, X_external, y, groups, args)
    for row, oracle in zip(rows, oracles, strict=True):
        row.update(seed=seed, oracle=oracle)
    finding = check_site(classifier, X_external)
    X_test, n_external = loader.transform(data.paths[test]), len(external.paths)
    return {
        "seed": seed,
        "n_train": len(train),
        "train_seconds": seconds,
        "adaptation": {**adaptation_summary(rows), "rows": rows},
        "external_check": {
            **finding._asdict(),
            "prevalence": float(np.mean(y == classifier.classes_[1])),
        },
        "internal_checks": batch_checks(
            classifier, X_test, data.target[test], data.groups[test], n_external, args
        ),
        "shifted_checks": shifted_checks(pipe, data.paths[test], n_external),
    }


def main(argv=None):
    args = parse_args(argv)
    warnings.simplefilter("ignore", SiteShiftWarning)
    warnings.simplefilter("ignore", InputCheckWarning)
    data = load_chest_xray(args.data_dir)
    external = load_chest_xray(args.external)
    networks = []
    for seed in args.seeds:
        print(f"network seed {seed}", flush=True)
        networks.append(network_study(data, external, seed, args))
    every_resample = [row for n in networks for row in n["adaptation"]["rows"]]
    result = {
        "command": "python benchmarks/site.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "data_dir": str(args.data_dir),
        "external": str(args.external),
        "n_external": len(external.paths),
        "local_images": args.local_images,
        "resamples": args.resamples,
        "min_recall": args.min_recall,
        "adaptation": adaptation_summary(every_resample),
        "networks": networks,
    }
    write_results(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
