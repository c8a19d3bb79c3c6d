"""At a new site: adaptation on a few labelled local cases, and the shift check.

The recipe of ``pneumoclf train`` is trained on the training part of a
patient-grouped split of the training folder (by default ``chest_xray``; 80% of
the patients, seed ``--seed``). An external folder (by default
``../shared/data/external``, half of the official Kermany test split) plays the
new site:

* adaptation: ``--resamples`` times, whole external patients are drawn until
  ``--local-images`` images are labelled; :func:`pneumoclf.site.adapt_to_site`
  recalibrates and chooses the threshold on them, and the rest of the external
  images judge it (recall, specificity), beside the model's own threshold and the
  figures the adaptation promised (cross-fitted);
* shift check: :func:`pneumoclf.site.check_site` on every external image; on
  ``--batches`` batches of as many images drawn by patient from the held-out
  internal patients (how often it fires where nothing shifted); and on the
  held-out internal images after acquisition shifts of ``benchmarks/shift.py``.

Run from the repository root::

    python benchmarks/site.py --seed 0 --model /tmp/site_model.pneumoclf

``--model`` keeps the trained model (and reuses it when the file exists; it must
come from the same ``--seed`` and data). Writes ``site.json`` and ``site.md``.
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from quality import REPO_ROOT, machine, write_results
from shift import SHIFTS, shifted_copies

from pneumoclf import load_chest_xray, patient_split
from pneumoclf.exceptions import InputCheckWarning, SiteShiftWarning
from pneumoclf.persistence import load_model, save_model
from pneumoclf.recipes import make_pipeline
from pneumoclf.site import adapt_to_site, check_site

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "chest_xray"
DEFAULT_EXTERNAL = REPO_ROOT.parent / "shared" / "data" / "external"
#: Acquisition shifts the held-out internal images are checked under.
CHECKED_SHIFTS = ("crop 10%", "gamma 0.7", "contrast 0.7", "border 10%", "blur")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--external", type=Path, default=DEFAULT_EXTERNAL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, help="model file to keep or reuse")
    parser.add_argument("--resamples", type=int, default=10)
    parser.add_argument("--local-images", type=int, default=100)
    parser.add_argument("--min-recall", type=float, default=0.95)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )
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


def patients_until(groups, n_images, rng):
    """A mask of whole patients, drawn at random until ``n_images`` are taken."""
    chosen, taken = [], 0
    for patient in rng.permutation(np.unique(groups)):
        if taken >= n_images:
            break
        chosen.append(patient)
        taken += int(np.sum(groups == patient))
    return np.isin(groups, chosen)


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


def batch_checks(classifier, X, y, groups, n_images, n_batches):
    rows = []
    for batch in range(n_batches):
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


def markdown(result):
    a = result["adaptation"]
    lines = [
        "# At a new site",
        "",
        f"Command: `{result['command']}`. Machine: {result['machine']['cpu']}. "
        f"Model: the recipe trained on {result['n_train']} images of the training "
        f"part of a patient split of `{result['data_dir']}` (80% of patients, seed "
        f"{result['seed']}); the new site: `{result['external']}` "
        f"({result['n_external']} images).",
        "",
        f"## Adaptation on {result['local_images']} labelled local images "
        f"({len(a['rows'])} resamples by patient, recall target "
        f"{result['min_recall']:g}; judged on the rest)",
        "",
        "| threshold | recall mean (min to max) | specificity mean (min to max) |",
        "|---|---|---|",
    ]
    for label, prefix in (("model's own", "_before"), ("adapted", "")):
        recall, spec = a[f"recall{prefix}"], a[f"specificity{prefix}"]
        lines.append(
            f"| {label} | {recall['mean']:.1%} ({recall['min']:.1%} to "
            f"{recall['max']:.1%}) | {spec['mean']:.1%} ({spec['min']:.1%} to "
            f"{spec['max']:.1%}) |"
        )
    recall, spec = a["expected_recall"], a["expected_specificity"]
    lines += [
        f"| promised by the adaptation (cross-fitted) | {recall['mean']:.1%} | "
        f"{spec['mean']:.1%} |",
        "",
        f"Best specificity any threshold reaches at recall >= {result['min_recall']:g}"
        f" on the rest (a bound of threshold choice): {a['oracle']['mean']:.1%} "
        f"({a['oracle']['min']:.1%} to {a['oracle']['max']:.1%}).",
        "",
        "## Shift check",
        "",
        "| batch | images | fired | p-value | estimated prevalence | true prevalence |",
        "|---|---|---|---|---|---|",
    ]
    ext = result["external_check"]
    lines.append(
        f"| external | {ext['n_images']} | {'yes' if ext['shifted'] else 'no'} | "
        f"{ext['p_value']:.4f} | {ext['estimated_prevalence']:.3f} | "
        f"{ext['prevalence']:.3f} |"
    )
    internal = result["internal_checks"]
    fired = sum(row["shifted"] for row in internal)
    errors = [abs(r["estimated_prevalence"] - r["prevalence"]) for r in internal]
    lines.append(
        f"| {len(internal)} internal batches (held-out patients) | "
        f"{internal[0]['n_images']} each | {fired} of {len(internal)} | "
        f"min {min(r['p_value'] for r in internal):.4f} | error at most "
        f"{max(errors):.3f} | |"
    )
    for row in result["shifted_checks"]:
        lines.append(
            f"| internal, {row['shift']} | {ext['n_images']} | "
            f"{'yes' if row['shifted'] else 'no'} | {row['p_value']:.4f} | "
            f"{row['estimated_prevalence']:.3f} | |"
        )
    return "\n".join(lines) + "\n"


def oracle_specificity(classifier, X, y, groups, args):
    values = []
    for resample in range(args.resamples):
        rest = ~patients_until(groups, args.local_images,
                               np.random.default_rng(resample))  # fmt: skip
        scores = classifier.predict_proba(X[rest])[:, 1]
        pneumonia = y[rest] == classifier.classes_[1]
        ordered = np.sort(scores[pneumonia])
        threshold = ordered[int(np.floor(len(ordered) * (1 - args.min_recall)))]
        values.append(float(np.mean(scores[~pneumonia] < threshold)))
    return values


def main(argv=None):
    args = parse_args(argv)
    warnings.simplefilter("ignore", SiteShiftWarning)
    warnings.simplefilter("ignore", InputCheckWarning)
    data = load_chest_xray(args.data_dir)
    train, _, test = patient_split(
        data.paths, data.target, groups=data.groups, sizes=(0.8, 0.0, 0.2),
        random_state=args.seed,
    )  # fmt: skip
    pipe, seconds = trained_pipeline(data, train, args.seed, args.model)
    loader, classifier = pipe[0], pipe[-1]
    external = load_chest_xray(args.external)
    X_external = loader.transform(external.paths)
    rows = adaptation_study(
        classifier, X_external, external.target, external.groups, args
    )
    adaptation = {
        name: summary([row[name] for row in rows])
        for name in ("recall", "specificity", "recall_before", "specificity_before",
                     "expected_recall", "expected_specificity")
    }  # fmt: skip
    adaptation["oracle"] = summary(
        oracle_specificity(
            classifier, X_external, external.target, external.groups, args
        )
    )
    adaptation["rows"] = rows
    finding = check_site(classifier, X_external)
    X_test = loader.transform(data.paths[test])
    result = {
        "command": "python benchmarks/site.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "data_dir": str(args.data_dir),
        "external": str(args.external),
        "seed": args.seed,
        "n_train": len(train),
        "train_seconds": seconds,
        "n_external": len(external.paths),
        "local_images": args.local_images,
        "min_recall": args.min_recall,
        "adaptation": adaptation,
        "external_check": {
            **finding._asdict(),
            "prevalence": float(np.mean(external.target == 1)),
        },
        "internal_checks": batch_checks(
            classifier,
            X_test,
            data.target[test],
            data.groups[test],
            len(external.paths),
            args.batches,
        ),
        "shifted_checks": shifted_checks(pipe, data.paths[test], len(external.paths)),
    }
    write_results(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
