"""How well each heat-map method localises a lesion it is known to have used.

Synthetic X-ray-like images (a bright background with two darker lung fields, a
spine and noise) where the positive class carries a bright soft disc, the
"lesion", at a random place inside a lung. The classifier learns the task from
them; on held-out positives each method of :func:`pneumoclf.explain.heatmaps`
is scored by

* the pointing game: the share of positives whose hottest pixel lies on the
  lesion;
* the mean heat on the lesion divided by the mean heat elsewhere, per image,
  then averaged;
* seconds per image.

Run from the repository root::

    python benchmarks/explain.py --seeds 0 1 \
        --sample-figure docs/user_guide/images/heatmap_methods.png

Writes ``explain.json`` and ``explain.md`` into ``--out``.
"""

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
METHODS = [
    ("integrated_gradients", None),
    ("gradcam", "conv_3"),
    ("gradcam", "conv_2"),
    ("gradcam", "conv_1"),
    ("occlusion", None),
]


def synthetic_xrays(n_images, side, seed):
    """Images in [0, 1], labels, and the lesion mask of each positive.

    Returns
    -------
    X : ndarray of shape (n, side, side), float32
    y : ndarray of shape (n,), 0 or 1 (half of each)
    lesions : ndarray of shape (n, side, side), bool; all False for negatives
    """
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:side, 0:side] / side
    lungs = [
        ((rows - 0.5) / 0.32) ** 2 + ((columns - centre) / 0.16) ** 2 <= 1
        for centre in (0.3, 0.7)
    ]
    spine = np.abs(columns - 0.5) < 0.05
    y = np.arange(n_images) % 2
    X = np.empty((n_images, side, side), dtype=np.float32)
    lesions = np.zeros((n_images, side, side), dtype=bool)
    radius = side / 14
    for i in range(n_images):
        image = 0.55 + 0.1 * rows + rng.normal(0, 0.03, (side, side))
        for lung in lungs:
            image[lung] -= 0.3 + rng.uniform(-0.05, 0.05)
        image[spine] += 0.15
        if y[i]:
            lung = lungs[rng.integers(2)]
            inner = np.argwhere(lung)
            centre = inner[rng.integers(len(inner))]
            distance = np.hypot(*(np.indices((side, side)).T - centre).T)
            image += 0.3 * np.clip(1.5 - distance / radius, 0, 1)
            lesions[i] = distance <= radius
        X[i] = np.clip(image, 0, 1)
    order = rng.permutation(n_images)
    return X[order], y[order], lesions[order]


def score_maps(maps, lesions):
    """Pointing-game hits and inside/outside ratios of each map."""
    hits, ratios = [], []
    for heat, lesion in zip(maps, lesions, strict=True):
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        hits.append(bool(lesion[peak]))
        outside = heat[~lesion].mean()
        ratios.append(float(heat[lesion].mean() / outside) if outside > 0 else np.inf)
    return hits, ratios


def run_seed(seed, args):
    from sklearn.metrics import roc_auc_score

    from pneumoclf import PneumoniaCNNClassifier
    from pneumoclf.explain import heatmaps

    X, y, lesions = synthetic_xrays(args.n_train + args.n_test, args.side, seed)
    train, test = slice(0, args.n_train), slice(args.n_train, None)
    classifier = PneumoniaCNNClassifier(epochs=args.epochs, random_state=seed)
    classifier.fit(X[train], y[train])
    auc = roc_auc_score(y[test], classifier.predict_proba(X[test])[:, 1])
    positives = np.flatnonzero(y[test] == 1)
    images, masks = X[test][positives], lesions[test][positives]
    rows = []
    for method, layer in METHODS:
        start = time.perf_counter()
        maps = heatmaps(classifier, images, method=method, layer=layer)
        seconds = (time.perf_counter() - start) / len(images)
        hits, ratios = score_maps(maps, masks)
        rows.append(
            {
                "method": method,
                "layer": layer,
                "pointing_game": float(np.mean(hits)),
                "mean_inside_outside_ratio": float(np.mean(ratios)),
                "median_inside_outside_ratio": float(np.median(ratios)),
                "seconds_per_image": seconds,
            }
        )
        print(f"seed {seed} {method} {layer}: {rows[-1]}", file=sys.stderr)
    return {
        "seed": seed,
        "test_auc": float(auc),
        "n_positives": len(positives),
        "n_epochs": classifier.n_epochs_,
        "methods": rows,
    }


def lung_masks(images):
    """A rough mask of the lung fields of each chest X-ray, from its pixels alone.

    The lungs are the large, moderately dark areas inside the chest: after a 5x5
    mean blur, the pixels between the 10th and the 40th percentile of the
    image's central box, which leaves out a tenth of the side at the left, right
    and top and a fifth at the bottom (shoulders, film edges, abdomen); the
    darkest tenth is mostly the air beside the body. Crude, but independent of
    every heat-map method, and the same for all of them.
    """
    from scipy.ndimage import uniform_filter

    height, width = images.shape[1:]
    box = np.zeros((height, width), dtype=bool)
    box[height // 10 : height - height // 5, width // 10 : width - width // 10] = True
    masks = np.zeros(images.shape, dtype=bool)
    for i, image in enumerate(images):
        blurred = uniform_filter(image, size=5)
        low, high = np.percentile(blurred[box], [10, 40])
        masks[i] = box & (blurred >= low) & (blurred < high)
    return masks


def lung_heat(pipe, paths):
    """Per method: the share of all heat inside the lung masks, and its chance level."""
    from pneumoclf.explain import METHODS as ALL_METHODS
    from pneumoclf.explain import heatmaps

    images = pipe[0].transform(paths)[..., 0]
    masks = lung_masks(images)
    rows = {}
    for method in ALL_METHODS:
        maps = heatmaps(pipe, paths, method=method)
        totals = maps.sum(axis=(1, 2))
        has_heat = totals > 0
        shares = (maps * masks).sum(axis=(1, 2))[has_heat] / totals[has_heat]
        rows[method] = {
            "share_of_heat_in_lungs": float(np.mean(shares)),
            "images_with_heat": int(has_heat.sum()),
        }
    rows["chance"] = {"share_of_image_in_lungs": float(masks.mean())}
    return rows


def sample_figure(path, seed=0):
    """Overlays of each method on held-out images of the bundled sample.

    The recipe of ``pneumoclf train`` is fitted on every other image of the
    200-image sample (a split by patient: one image each); three PNEUMONIA and
    two NORMAL held-out images are drawn, one row per method, and each
    method's share of heat inside rough lung masks (:func:`lung_masks`) is
    measured on all 100 held-out images.

    Returns
    -------
    dict
        The held-out ROC AUC of that small model and the lung-heat figures.
    """
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    from pneumoclf.datasets import load_sample
    from pneumoclf.explain import METHODS as ALL_METHODS
    from pneumoclf.explain import heatmaps, overlay_heatmap
    from pneumoclf.recipes import make_pipeline

    data = load_sample()
    pipe = make_pipeline(cnn__random_state=seed, cnn__epochs=40)
    pipe.fit(data.paths[::2], data.target[::2], cnn__groups=data.groups[::2])
    paths, target = data.paths[1::2], data.target[1::2]
    auc = roc_auc_score(target, pipe.predict_proba(paths)[:, 1])
    shown = [*paths[target == 1][:3], *paths[target == 0][:2]]
    rows = [
        np.concatenate(
            [
                np.asarray(overlay_heatmap(image, heat).resize((224, 224)))
                for image, heat in zip(
                    shown, heatmaps(pipe, shown, method=method), strict=True
                )
            ],
            axis=1,
        )
        for method in ALL_METHODS
    ]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return {"held_out_auc": float(auc), "lung_heat": lung_heat(pipe, paths)}


def markdown(result):
    lines = [
        f"Synthetic lesions, {result['side']}x{result['side']}, "
        f"{result['n_train']} training images, seeds {result['seeds']}; "
        "test AUC "
        + ", ".join(f"{run['test_auc']:.3f}" for run in result["runs"])
        + ".",
        "",
        "| method | layer | pointing game | mean inside/outside | "
        "median inside/outside | ms per image |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for index, (method, layer) in enumerate(METHODS):
        rows = [run["methods"][index] for run in result["runs"]]
        lines.append(
            f"| {method} | {layer or ''} | "
            f"{np.mean([r['pointing_game'] for r in rows]):.1%} | "
            f"{np.mean([r['mean_inside_outside_ratio'] for r in rows]):.2f} | "
            f"{np.mean([r['median_inside_outside_ratio'] for r in rows]):.2f} | "
            f"{1000 * np.mean([r['seconds_per_image'] for r in rows]):.1f} |"
        )
    if "sample_figure" in result:
        sample = result["sample_figure"]
        heat = sample["lung_heat"]
        lines += [
            "",
            f"Bundled sample, recipe fitted on 100 images (held-out AUC "
            f"{sample['held_out_auc']:.3f}); share of heat inside rough lung masks "
            f"on the 100 held-out images (the masks cover "
            f"{heat['chance']['share_of_image_in_lungs']:.1%} of the image):",
            "",
            "| method | share of heat in the lungs | images with any heat |",
            "|---|---:|---:|",
        ]
        for method, row in heat.items():
            if method != "chance":
                lines.append(
                    f"| {method} | {row['share_of_heat_in_lungs']:.1%} | "
                    f"{row['images_with_heat']} |"
                )
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=800)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--name", default="explain")
    parser.add_argument(
        "--sample-figure",
        type=Path,
        help="also draw each method on held-out images of the bundled sample here",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs = [run_seed(seed, args) for seed in args.seeds]
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "side": args.side,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": runs,
    }
    if args.sample_figure is not None:
        result["sample_figure"] = {
            "path": str(args.sample_figure),
            **sample_figure(args.sample_figure),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
