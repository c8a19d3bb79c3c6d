"""How the recipe of ``pneumoclf train`` holds up under shifts a new site would bring.

The images are split by patient into train / val / test parts (70 / 15 / 15, as in
``quality.py``). Each recipe is trained on the train part (the classifier holds out
its own validation share of it, by patient, to stop early, calibrate and choose its
threshold) and judged, at the threshold it chose itself, on the test part:

* as it is, and under **acquisition shifts** applied to each test file at its full
  resolution before loading: gamma, contrast, exposure, blur, noise, a lower
  resolution, strong JPEG re-encoding, a black border and a tighter crop;
* under **prevalence shifts**: the test part resampled to 62.5% pneumonia (the
  official test split's share) and to 10%; recall and specificity do not depend on
  the share, the calibration does, so a calibrated recipe is also judged when told
  the share (``prevalence=``);
* on **held-out subgroups**: trained again without one naming series of the data
  (the ``NORMAL2-IM-*`` normals, or the viral pneumonias) and tested on that
  series' test patients against the other class's test images.

Reported per shift: ROC AUC, recall and specificity at the recipe's threshold,
expected calibration error (10 equal-width bins) and Brier score, and the worst
case over the shifts. ``--recipe`` picks named variants (see ``RECIPES``); ``--val``
judges on the val part instead, to choose between recipes without looking at the
test part. ``--tta`` also judges the same networks with test-time augmentation: the
mean probability over each loaded image and four small zooms and shifts of it
(``TTA_VARIANTS``), at the same threshold.

Run from the repository root::

    python benchmarks/shift.py --seeds 0 --recipes previous current

Writes ``shift.json`` and ``shift.md`` into ``--out``.
"""

import io
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from quality import (
    SPLIT_SIZES,
    common_parser,
    machine,
    pipeline_overrides,
    write_results,
)
from scipy import ndimage

from pneumoclf import load_chest_xray, patient_split
from pneumoclf.metrics import clinical_report
from pneumoclf.recipes import make_pipeline

#: The settings of version 0.1's recipe that later versions changed, so that the
#: variants below stay what they were measured as, whatever ``make_pipeline()``
#: ships now.
VERSION_0_1 = {
    "cnn__class_weight": None,
    "cnn__blur": 0.0,
    "cnn__target_recall": 0.99,
    "cnn__head": "flatten",
}

#: Recipe variants, as pipeline parameters on top of version 0.1's recipe
#: (``make_pipeline()`` with ``VERSION_0_1``).
_VARIANTS = {
    # The recipe before calibration, loss-based early stopping and its augmentation.
    "previous": {
        "cnn__monitor": "auc",
        "cnn__calibration": None,
        "cnn__zoom": 0.1,
        "cnn__shift": 0.05,
        "cnn__contrast": 0.1,
    },
    # Calibration and loss-based early stopping, with the previous augmentation.
    "calibrated": {"cnn__zoom": 0.1, "cnn__shift": 0.05, "cnn__contrast": 0.1},
    # Version 0.1's recipe: calibration, loss-based early stopping, augmented.
    "v0.1": {},
    "recall_97": {"cnn__target_recall": 0.97},
    "recall_95": {"cnn__target_recall": 0.95},
    "equalize": {"load__normalize": "equalize"},
    # Stronger geometric and photometric augmentation: framing and exposure vary.
    "augmented": {"cnn__zoom": 0.2, "cnn__shift": 0.1, "cnn__contrast": 0.3},
    "equalize_augmented": {
        "load__normalize": "equalize",
        "cnn__zoom": 0.2,
        "cnn__shift": 0.1,
    },
    # Levers on top of version 0.1's recipe.
    "batch_norm": {"cnn__batch_norm": True},
    "smoothed": {"cnn__label_smoothing": 0.1},
    "zoomed": {"cnn__zoom": 0.3, "cnn__shift": 0.15},
    "balanced": {"cnn__class_weight": "balanced"},
    "blur": {"cnn__blur": 1.0},
    "balanced_blur": {"cnn__class_weight": "balanced", "cnn__blur": 1.0},
    "global_average": {"cnn__head": "global_average"},
    # The best trial of shift_search.py (seed 0), rounded.
    "searched": {
        "cnn__zoom": 0.2,
        "cnn__shift": 0.08,
        "cnn__contrast": 0.25,
        "cnn__dropout": 0.25,
        "cnn__head": "global_average",
    },
    "equalize_balanced": {
        "load__normalize": "equalize",
        "cnn__class_weight": "balanced",
    },
}

#: Every recipe by name: "current" is what ``make_pipeline()`` ships now.
RECIPES = {
    "current": {},
    **{name: {**VERSION_0_1, **params} for name, params in _VARIANTS.items()},
}


def _gamma(value):
    return lambda gray: gray.point(lambda v: 255 * (v / 255) ** value)


def _contrast(factor):
    return lambda gray: gray.point(lambda v: 128 + factor * (v - 128))


def _exposure(offset):
    return lambda gray: gray.point(lambda v: v + 255 * offset)


def _blur(gray):
    return gray.filter(ImageFilter.GaussianBlur(radius=gray.width / 150))


def _noise(gray, seed=0):
    rng = np.random.default_rng(seed)
    pixels = np.asarray(gray, dtype=np.float64)
    noisy = pixels + rng.normal(0, 0.05 * 255, pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _low_resolution(gray):
    small = gray.resize((gray.width // 4, gray.height // 4), Image.Resampling.BILINEAR)
    return small.resize(gray.size, Image.Resampling.BILINEAR)


def _jpeg(gray):
    buffer = io.BytesIO()
    gray.save(buffer, format="JPEG", quality=20)
    buffer.seek(0)
    return Image.open(buffer).copy()


def _border(gray):
    margin = gray.width // 10
    return ImageOps.expand(
        gray.resize((gray.width - 2 * margin, gray.height - 2 * margin)),
        border=margin,
        fill=0,
    )


def _crop(gray):
    margin = gray.width // 10
    return gray.crop((margin, margin, gray.width - margin, gray.height - margin))


#: Acquisition shifts: each turns an 8-bit grayscale picture into another.
SHIFTS = {
    "gamma 0.7": _gamma(0.7),
    "gamma 1.4": _gamma(1.4),
    "contrast 0.7": _contrast(0.7),
    "exposure +0.1": _exposure(0.1),
    "blur": _blur,
    "noise 5%": _noise,
    "resolution / 4": _low_resolution,
    "JPEG q20": _jpeg,
    "border 10%": _border,
    "crop 10%": _crop,
}
PREVALENCES = (0.625, 0.10)
SUBGROUPS = {
    "NORMAL2 normals": (0, lambda path: Path(path).name.startswith("NORMAL2-")),
    "viral pneumonia": (1, lambda path: "_virus_" in Path(path).name),
}


def expected_calibration_error(y, score, n_bins=10):
    """Mean gap between predicted and observed pneumonia share, over 10 bins."""
    bins = np.minimum((score * n_bins).astype(int), n_bins - 1)
    gaps = [
        abs(score[bins == b].mean() - y[bins == b].mean()) * np.mean(bins == b)
        for b in range(n_bins)
        if np.any(bins == b)
    ]
    return float(np.sum(gaps))


#: Test-time variants of a loaded image: (scale, row shift, column shift), the
#: scale and shifts as fractions of the side; (1, 0, 0) is the image itself.
TTA_VARIANTS = ((1.0, 0, 0), (0.9, 0, 0), (1.1, 0, 0), (1.0, 0, 0.05), (1.0, 0, -0.05))


def _zoomed_and_shifted(image, scale, row_shift, column_shift):
    """``image`` (h, w) seen ``1 / scale`` times larger and moved, edges repeated."""
    side = np.array(image.shape, dtype=float)
    centre = (side - 1) / 2
    offset = centre - scale * centre - np.array([row_shift, column_shift]) * side
    return ndimage.affine_transform(
        image, np.diag([scale, scale]), offset=offset, order=1, mode="nearest"
    )


def tta_scores(pipe, paths):
    """Mean pneumonia probability over the ``TTA_VARIANTS`` of each image."""
    X = pipe[0].transform(paths)
    scores = []
    for variant in TTA_VARIANTS:
        moved = np.stack([_zoomed_and_shifted(x[..., 0], *variant) for x in X])
        scores.append(pipe[-1].predict_proba(moved[..., None])[:, 1])
    return np.mean(scores, axis=0)


def plain_scores(pipe, paths):
    return pipe.predict_proba(paths)[:, 1]


def figures(y, score, threshold):
    """AUC, recall and specificity at ``threshold``, ECE and Brier score."""
    report = clinical_report(y, score, threshold)
    return {
        "roc_auc": report["roc_auc"],
        "recall": report["recall"],
        "specificity": report["specificity"],
        "ece": expected_calibration_error(y, score),
        "brier": float(np.mean((score - y) ** 2)),
        "n": len(y),
    }


def shifted_copies(paths, shift, folder):
    """Write each file with ``shift`` applied, as PNG; return the new paths."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            gray = ImageOps.exif_transpose(image).convert("L")
        copy = folder / f"{i}.png"
        shift(gray).convert("L").save(copy)
        copies.append(str(copy))
    return copies


def with_prevalence(y, share, seed):
    """Indices of a resample of ``y`` whose pneumonia share is ``share``."""
    rng = np.random.default_rng(seed)
    normal, pneumonia = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    # Keep as many images as the scarcer side allows.
    n_pneumonia = min(len(pneumonia), round(len(normal) * share / (1 - share)))
    n_normal = min(len(normal), round(n_pneumonia * (1 - share) / share))
    return np.concatenate(
        [rng.choice(normal, n_normal, replace=False),
         rng.choice(pneumonia, n_pneumonia, replace=False)]
    )  # fmt: skip


def told_prevalence(pipe, share, paths, scores_of=plain_scores):
    """Scores and threshold of the pipeline told that pneumonia has share ``share``."""
    pipe[-1].set_params(prevalence=share)
    try:
        return scores_of(pipe, paths), pipe[-1].threshold_
    finally:
        pipe[-1].set_params(prevalence=None)


def fit_recipe(recipe, data, train, seed, overrides):
    pipe = make_pipeline(cnn__random_state=seed, **RECIPES[recipe], **overrides)
    start = time.perf_counter()
    pipe.fit(data.paths[train], data.target[train], cnn__groups=data.groups[train])
    return pipe, time.perf_counter() - start


def study(recipe, data, seed, judged_on, overrides, scorers, subgroups=True):
    """Every shift's figures for one recipe trained on one split, per scorer."""
    train, val, test = patient_split(
        data.paths, data.target, groups=data.groups, sizes=SPLIT_SIZES,
        random_state=seed,
    )  # fmt: skip
    judged = {"val": val, "test": test}[judged_on]
    pipe, seconds = fit_recipe(recipe, data, train, seed, overrides)
    threshold = pipe[-1].threshold_
    paths, y = data.paths[judged], data.target[judged]
    rows = {name: {} for name in scorers}
    with tempfile.TemporaryDirectory() as folder:
        shifted = {
            name: shifted_copies(paths, shift, Path(folder) / name)
            for name, shift in SHIFTS.items()
        }
        for scorer, scores_of in scorers.items():
            score = scores_of(pipe, paths)
            rows[scorer]["none"] = figures(y, score, threshold)
            for name, copies in shifted.items():
                rows[scorer][name] = figures(y, scores_of(pipe, copies), threshold)
            for share in PREVALENCES:
                resample = with_prevalence(y, share, seed)
                rows[scorer][f"prevalence {share:.1%}"] = figures(
                    y[resample], score[resample], threshold
                )
                if pipe[-1].calibration_ is not None:
                    # The same images, the model told the share (prevalence=share).
                    told_score, told_threshold = told_prevalence(
                        pipe, share, paths[resample], scores_of
                    )
                    rows[scorer][f"prevalence {share:.1%}, told"] = figures(
                        y[resample], told_score, told_threshold
                    )
    for name, (label, member) in SUBGROUPS.items() if subgroups else ():
        in_group = np.array([member(p) for p in data.paths])
        sub_pipe, _ = fit_recipe(recipe, data, train[~in_group[train]], seed, overrides)
        tested = judged[(data.target[judged] != label) | in_group[judged]]
        for scorer, scores_of in scorers.items():
            rows[scorer][f"unseen {name}"] = figures(
                data.target[tested],
                scores_of(sub_pipe, data.paths[tested]),
                sub_pipe[-1].threshold_,
            )
    return {
        "seed": seed,
        "threshold": threshold,
        "n_epochs": pipe[-1].n_epochs_,
        "fit_seconds": seconds,
        "shifts": rows["plain"],
        **({"shifts_tta": rows["tta"]} if "tta" in rows else {}),
    }


def worst_case(rows):
    shifted = {name: row for name, row in rows.items() if name != "none"}
    return {
        "roc_auc": min(row["roc_auc"] for row in shifted.values()),
        "recall": min(row["recall"] for row in shifted.values()),
        "specificity": min(row["specificity"] for row in shifted.values()),
        "ece": max(row["ece"] for row in shifted.values()),
        "brier": max(row["brier"] for row in shifted.values()),
    }


def markdown(result):
    lines = [
        "# Recipe under shift",
        "",
        f"Judged on the {result['judged_on']} part of patient-grouped splits "
        f"(seeds {result['seeds']}), at each recipe's own threshold. Command: "
        f"`{result['command']}`. Machine: {result['machine']['cpu']}.",
        "",
    ]
    for recipe, runs in result["recipes"].items():
        lines += [f"## {recipe}", ""]
        for run in runs:
            lines += [
                f"Seed {run['seed']}: threshold {run['threshold']:.3f}, "
                f"{run['n_epochs']} epochs, {run['fit_seconds']:.0f} s to train.",
                "",
                "| shift | AUC | recall | specificity | ECE | Brier |",
                "|---|---|---|---|---|---|",
            ]
            lines += _shift_table(run["shifts"])
            if "shifts_tta" in run:
                lines += [
                    "With test-time augmentation, at the same threshold:",
                    "",
                    "| shift | AUC | recall | specificity | ECE | Brier |",
                    "|---|---|---|---|---|---|",
                    *_shift_table(run["shifts_tta"]),
                ]
    return "\n".join(lines)


def _shift_table(shifts):
    rows = {**shifts, "worst case": worst_case(shifts)}
    lines = [
        f"| {name} | {row['roc_auc']:.4f} | {row['recall']:.2%} | "
        f"{row['specificity']:.2%} | {row['ece']:.3f} | {row['brier']:.3f} |"
        for name, row in rows.items()
    ]
    return [*lines, ""]
    return "\n".join(lines)


def main(argv=None):
    parser = common_parser(__doc__.split("\n\n")[0], seeds=[0])
    parser.add_argument("--recipes", nargs="+", default=["previous", "current"])
    parser.add_argument("--val", action="store_true", help="judge on the val part")
    parser.add_argument("--name", default="shift", help="output file stem")
    parser.add_argument(
        "--tta", action="store_true", help="also judge with test-time augmentation"
    )
    parser.add_argument(
        "--no-subgroups",
        action="store_true",
        help="skip the held-out subgroups (one network per recipe and seed, not 3)",
    )
    args = parser.parse_args(argv)
    scorers = {"plain": plain_scores, **({"tta": tta_scores} if args.tta else {})}
    data = load_chest_xray(args.data)
    overrides = pipeline_overrides(args)
    judged_on = "val" if args.val else "test"
    result = {
        "command": shlex.join(["python", "benchmarks/shift.py", *sys.argv[1:]]),
        "machine": machine(),
        "seeds": args.seeds,
        "judged_on": judged_on,
        "overrides": {k: repr(v) for k, v in overrides.items()},
        "recipes": {},
    }
    for recipe in args.recipes:
        runs = []
        for seed in args.seeds:
            run = study(
                recipe, data, seed, judged_on, overrides, scorers,
                subgroups=not args.no_subgroups,
            )  # fmt: skip
            run["worst_case"] = worst_case(run["shifts"])
            if args.tta:
                run["worst_case_tta"] = worst_case(run["shifts_tta"])
            runs.append(run)
            print(
                f"{recipe} seed {seed}: done in {run['fit_seconds']:.0f} s", flush=True
            )
        result["recipes"][recipe] = runs
        write_results(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
