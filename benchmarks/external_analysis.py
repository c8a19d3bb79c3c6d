"""Why healthy children of an external set get high pneumonia scores.

Trains version 0.1's recipe on every training image with the first of ``--seeds``
(or reads ``--model``, a file that ``pneumoclf train --seed`` wrote with that seed)
and compares its external normals with the
normals of its own validation patients:

* **image statistics** at the network's input size: mean, spread, dark and bright
  levels (5th and 95th percentiles), edge energy (mean absolute difference of
  neighbouring pixels: sharpness) and the brightness of the side borders; for
  each, how well it tells external normals from validation normals (AUC, 0.5:
  no shift) and how it ranks with the score among external normals (Spearman);
* **a probe of cause**: the same images blurred or sharpened before the network
  sees them, and the median score and specificity at the model's threshold;
* **neighbours**: the share of pneumonia among the ten training images nearest
  to each external normal in the network's penultimate features, for the normals
  it calls pneumonia and those it does not;
* **naming series and provenance**: specificity of the ``IM-*`` and
  ``NORMAL2-IM-*`` normals, and of the external normals of verified and of
  unresolved provenance (the set's ``MANIFEST.csv``);
* **heat maps** (``--figure``) of the external normals with the highest scores.

Run from the repository root::

    python benchmarks/external_analysis.py --figure

Writes ``external_analysis.json`` and ``.md`` (and ``_heatmaps.png``) into ``--out``.
"""

import shlex
import sys
from pathlib import Path

import numpy as np
from external import DEFAULT_EXTERNAL, validation_part, verified_mask
from quality import common_parser, machine, write_results
from scipy import ndimage
from scipy.stats import spearmanr
from shift import RECIPES
from sklearn.metrics import roc_auc_score

from pneumoclf import load_chest_xray

#: Neighbours in the network's features whose labels are counted.
N_NEIGHBOURS = 10
#: Width, in pixels of the network's input, of the side borders measured.
BORDER = 6
#: Changes of sharpness applied before scoring: (name, function of images).
PROBES = {
    "as loaded": lambda X: X,
    "blurred, sigma 0.5 px": lambda X: _blurred(X, 0.5),
    "blurred, sigma 1 px": lambda X: _blurred(X, 1.0),
    "sharpened, amount 0.5": lambda X: _sharpened(X, 0.5),
    "sharpened, amount 1": lambda X: _sharpened(X, 1.0),
}


def _blurred(X, sigma):
    return ndimage.gaussian_filter(X, (0, sigma, sigma, 0)).astype(np.float32)


def _sharpened(X, amount):
    """Unsharp masking: the image plus ``amount`` times its detail."""
    return np.clip(X + amount * (X - _blurred(X, 1.0)), 0, 1).astype(np.float32)


def image_statistics(X):
    """Per-image statistics of ``(n, h, w, 1)`` images in [0, 1]."""
    images = X[..., 0]
    flat = images.reshape(len(images), -1)
    sides = np.concatenate(
        [images[:, :, :BORDER], images[:, :, -BORDER:]], axis=2
    ).reshape(len(images), -1)
    edges = np.abs(np.diff(images, axis=1)).mean(axis=(1, 2)) + np.abs(
        np.diff(images, axis=2)
    ).mean(axis=(1, 2))
    return {
        "mean": flat.mean(axis=1),
        "spread (std)": flat.std(axis=1),
        "dark level (p5)": np.percentile(flat, 5, axis=1),
        "bright level (p95)": np.percentile(flat, 95, axis=1),
        "edge energy": edges,
        "side borders": sides.mean(axis=1),
    }


def statistics_table(val_X, val_y, ext_X, ext_y, ext_score):
    """Each statistic per group, its shift AUC and its correlation with the score."""
    val_stats, ext_stats = image_statistics(val_X), image_statistics(ext_X)
    normal = ext_y == 0
    rows = {}
    for name in val_stats:
        val_normal, ext_normal = val_stats[name][val_y == 0], ext_stats[name][normal]
        rows[name] = {
            "validation normals": float(val_normal.mean()),
            "validation pneumonia": float(val_stats[name][val_y == 1].mean()),
            "external normals": float(ext_normal.mean()),
            "external pneumonia": float(ext_stats[name][~normal].mean()),
            "shift_auc": float(
                roc_auc_score(
                    np.r_[np.zeros(len(val_normal)), np.ones(len(ext_normal))],
                    np.r_[val_normal, ext_normal],
                )
            ),
            "spearman_with_score": float(
                spearmanr(ext_normal, ext_score[normal]).statistic
            ),
        }
    return rows


def probe_table(classifier, groups, threshold):
    """Median normal score and specificity after each change of sharpness."""
    rows = {}
    for probe, change in PROBES.items():
        rows[probe] = {}
        for group, (X, y) in groups.items():
            score = classifier.predict_proba(change(X[y == 0]))[:, 1]
            rows[probe][group] = {
                "median_score": float(np.median(score)),
                "specificity": float(np.mean(score < threshold)),
            }
    return rows


def neighbour_table(classifier, train_X, train_y, ext_X, ext_y, ext_score, threshold):
    """Share of pneumonia among each external image's nearest training images."""
    import keras

    network = classifier.model_
    features = keras.Model(network.inputs, network.get_layer("dense").output)

    def unit(X):
        F = features.predict(X, batch_size=256, verbose=0)
        return F / (np.linalg.norm(F, axis=1, keepdims=True) + 1e-12)

    similarity = unit(ext_X) @ unit(train_X).T
    nearest = np.argsort(-similarity, axis=1)[:, :N_NEIGHBOURS]
    pneumonia_share = train_y[nearest].mean(axis=1)
    called = ext_score >= threshold
    groups = {
        "external normals called pneumonia": (ext_y == 0) & called,
        "external normals called normal": (ext_y == 0) & ~called,
        "external pneumonia": ext_y == 1,
    }
    return {
        name: {
            "n": int(mask.sum()),
            "pneumonia_share_of_neighbours": float(pneumonia_share[mask].mean()),
        }
        for name, mask in groups.items()
    }


def series_table(paths, y, score, threshold):
    """Specificity of the normals of each naming series."""
    series = np.array(
        ["NORMAL2" if "NORMAL2-" in Path(p).name else "IM" for p in paths]
    )
    rows = {}
    for name in ("IM", "NORMAL2"):
        mask = (y == 0) & (series == name)
        rows[name] = {
            "n": int(mask.sum()),
            "specificity": float(np.mean(score[mask] < threshold)),
            "median_score": float(np.median(score[mask])),
        }
    return rows


def provenance_table(verified, y, score, threshold):
    """Specificity of the normals of verified and of unresolved provenance."""
    rows = {}
    for name, mask in (("verified", verified), ("unresolved", ~verified)):
        normals = score[mask & (y == 0)]
        rows[name] = {
            "n": len(normals),
            "specificity": float(np.mean(normals < threshold)),
            "median_score": float(np.median(normals)),
        }
    return rows


def fitted_pipeline(args, data):
    if args.model is not None:
        from pneumoclf.persistence import load_model

        return load_model(args.model)
    from pneumoclf.recipes import make_pipeline

    pipe = make_pipeline(cnn__random_state=args.seeds[0], **RECIPES["v0.1"])
    pipe.fit(data.paths, data.target, cnn__groups=data.groups)
    return pipe


def markdown(result):
    lines = [
        "# Why external normals score high",
        "",
        f"Command: `{result['command']}`. Model threshold "
        f"{result['threshold']:.3f}; {result['n_validation']} validation images, "
        f"{result['n_external']} external images.",
        "",
        "| statistic | validation normals | validation pneumonia | external normals "
        "| external pneumonia | shift AUC | Spearman with score |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["statistics"].items():
        lines.append(
            f"| {name} | {row['validation normals']:.3f} | "
            f"{row['validation pneumonia']:.3f} | {row['external normals']:.3f} | "
            f"{row['external pneumonia']:.3f} | {row['shift_auc']:.2f} | "
            f"{row['spearman_with_score']:+.2f} |"
        )
    lines += [
        "",
        "Normals' median score and specificity at the model's threshold after a "
        "change of sharpness:",
        "",
        "| images | validation normals | external normals |",
        "|---|---|---|",
    ]
    for probe, row in result["probes"].items():
        cells = [
            f"{row[group]['median_score']:.3f}, {row[group]['specificity']:.1%}"
            for group in ("validation", "external")
        ]
        lines.append(f"| {probe} | {' | '.join(cells)} |")
    lines += [
        "",
        "| external images | n | pneumonia among 10 nearest training images |",
    ]
    lines.append("|---|---|---|")
    for name, row in result["neighbours"].items():
        lines.append(
            f"| {name} | {row['n']} | {row['pneumonia_share_of_neighbours']:.0%} |"
        )
    lines += ["", "| normals | series | n | specificity | median score |"]
    lines.append("|---|---|---|---|---|")
    for group in ("validation", "external"):
        for name, row in result["series"][group].items():
            lines.append(
                f"| {group} | {name} | {row['n']} | {row['specificity']:.1%} | "
                f"{row['median_score']:.3f} |"
            )
    for name, row in result["provenance"].items():
        lines.append(
            f"| external | {name} provenance | {row['n']} | {row['specificity']:.1%} "
            f"| {row['median_score']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = common_parser(__doc__.split("\n\n")[0], seeds=[0])
    parser.add_argument("--external", type=Path, default=DEFAULT_EXTERNAL)
    parser.add_argument("--model", type=Path, help="a model file to analyse")
    parser.add_argument("--name", default="external_analysis")
    parser.add_argument("--figure", action="store_true", help="draw heat maps")
    args = parser.parse_args(argv)
    data = load_chest_xray(args.data)
    external = load_chest_xray(args.external)
    seed = args.seeds[0]
    pipe = fitted_pipeline(args, data)
    loader, classifier = pipe[0], pipe[-1]
    threshold = classifier.threshold_
    validation = validation_part(classifier, data, seed)
    train_X = loader.transform(data.paths)
    val_X, val_y = train_X[validation], data.target[validation]
    ext_X, ext_y = loader.transform(external.paths), external.target
    ext_score = classifier.predict_proba(ext_X)[:, 1]
    val_score = classifier.predict_proba(val_X)[:, 1]
    groups = {"validation": (val_X, val_y), "external": (ext_X, ext_y)}
    result = {
        "command": shlex.join(
            ["python", "benchmarks/external_analysis.py", *sys.argv[1:]]
        ),
        "machine": machine(),
        "threshold": threshold,
        "n_validation": len(validation),
        "n_external": len(ext_y),
        "statistics": statistics_table(val_X, val_y, ext_X, ext_y, ext_score),
        "probes": probe_table(classifier, groups, threshold),
        "neighbours": neighbour_table(
            classifier, train_X, data.target, ext_X, ext_y, ext_score, threshold
        ),
        "series": {
            "validation": series_table(
                data.paths[validation], val_y, val_score, threshold
            ),
            "external": series_table(external.paths, ext_y, ext_score, threshold),
        },
        "provenance": provenance_table(
            verified_mask(args.external, external.paths), ext_y, ext_score, threshold
        ),
    }
    write_results(args.out, args.name, result, markdown(result))
    if args.figure:
        from pneumoclf.explain import plot_heatmaps

        highest = np.argsort(-np.where(ext_y == 0, ext_score, -1.0))[:8]
        figure = plot_heatmaps(pipe, external.paths[highest])
        figure.savefig(args.out / f"{args.name}_heatmaps.png", dpi=100)


if __name__ == "__main__":
    main()
