"""At a new site: what else, beside the threshold, moves the ranking of its images.

A network of ``benchmarks/site.py`` (``--model``, one of the ``seed<N>.pneumoclf``
files its ``--model-dir`` keeps, with the same ``--seed``) scores the external
folder (the new site) after each lever below. As in ``benchmarks/site.py``, whole
external patients are drawn ``--resamples`` times until ``--local-images`` are
labelled; the threshold is the conformal one of their pneumonia scores
(:func:`pneumoclf.site.site_threshold`, which the recalibration of
:func:`pneumoclf.site.adapt_to_site` does not change, being monotone), and the
rest of the external images judge it. The bound is the best specificity any
threshold reaches at the target recall on the rest.

Levers, each applied to every external image:

* test-time augmentation: the mean logit over the image, four shifts of 3 pixels
  and zooms of 0.9 and 1.1;
* sharpening (unsharp mask, sigma 1 pixel) and histogram matching to the
  training images' pooled intensity quantiles;
* CORAL: the external images' penultimate features whitened and recoloured to the
  mean and covariance of the held-out internal images', before the output layer
  (uses the unlabelled external images, all of them);
* a logistic regression on the penultimate features, fitted on the training
  images and the labelled local ones, weighted up;
* the logit plus that of the share of pneumonia among the 7 nearest labelled local
  images in feature space.

Run from the repository root::

    python benchmarks/site_levers.py --model /tmp/site_models/seed0.pneumoclf --seed 0

Writes ``site_levers.json`` and ``site_levers.md``.
"""

import argparse
import sys
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
from scipy import ndimage
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from pneumoclf import load_chest_xray, patient_split
from pneumoclf.exceptions import InputCheckWarning
from pneumoclf.persistence import load_model
from pneumoclf.site import site_threshold

SHIFTS = ((-3, 0), (3, 0), (0, -3), (0, 3))
ZOOMS = (0.9, 1.1)
NEIGHBOURS = 7


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="the model's split seed")
    add_site_arguments(parser)
    parser.add_argument("--name", default="site_levers")
    return parser.parse_args(argv)


class Network:
    """The model's logits, penultimate features and output layer."""

    def __init__(self, classifier):
        self.classifier = classifier
        dense = [layer for layer in classifier.model_.layers
                 if type(layer).__name__ == "Dense"][-1]  # fmt: skip
        weights, bias = dense.get_weights()
        self.weights, self.bias = weights[:, 0].astype(np.float64), float(bias[0])

    def outputs(self, X):
        scores, features = self.classifier.network_outputs(X)
        scores = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
        return logit(scores), features.astype(np.float64)

    def logits(self, X):
        return self.outputs(X)[0]

    def head(self, features):
        return features @ self.weights + self.bias


def shifted(X, dx, dy):
    images = [ndimage.shift(x[..., 0], (dy, dx), mode="nearest") for x in X]
    return np.stack(images)[..., None].astype(np.float32)


def zoomed(X, factor):
    side = X.shape[1]
    out = []
    for x in X:
        image = ndimage.zoom(x[..., 0], factor, order=1)
        if factor > 1:
            start = (image.shape[0] - side) // 2
            image = image[start : start + side, start : start + side]
        else:
            pad = side - image.shape[0]
            image = np.pad(image, ((pad // 2, pad - pad // 2),) * 2, mode="edge")
        out.append(image[:side, :side])
    return np.stack(out)[..., None].astype(np.float32)


def augmented_logits(network, X):
    views = [X, *(shifted(X, dx, dy) for dx, dy in SHIFTS)]
    views += [zoomed(X, factor) for factor in ZOOMS]
    return np.mean([network.logits(view) for view in views], axis=0)


def sharpened(X, amount):
    blurred = np.stack([ndimage.gaussian_filter(x[..., 0], 1.0) for x in X])
    return np.clip(X + amount * (X - blurred[..., None]), 0, 1).astype(np.float32)


def histogram_matched(X, reference):
    levels = np.linspace(0, 1, 257)
    target = np.quantile(reference.ravel(), levels)
    ramp = np.arange(len(levels)) * 1e-9  # strictly increasing for np.interp
    return np.stack(
        [np.interp(x, np.quantile(x.ravel(), levels) + ramp, target) for x in X]
    ).astype(np.float32)


def _matrix_power(covariance, power):
    values, vectors = np.linalg.eigh(covariance)
    return (vectors * np.clip(values, 1e-6, None) ** power) @ vectors.T


def coral(features, reference):
    """``features`` whitened, then given the mean and covariance of ``reference``."""
    ridge = 1e-3 * np.eye(features.shape[1])
    own = np.cov(features.T) + ridge
    wanted = np.cov(reference.T) + ridge
    recolour = _matrix_power(own, -0.5) @ _matrix_power(wanted, 0.5)
    return (features - features.mean(axis=0)) @ recolour + reference.mean(axis=0)


def joint_regression(train_features, y_train, features, y, scaler, weight):
    """Scores of a logistic regression on training plus local features."""

    def scores(local):
        X = scaler.transform(np.vstack([train_features, features[local]]))
        target = np.concatenate([y_train, y[local]])
        weights = np.concatenate([np.ones(len(y_train)),
                                  np.full(int(local.sum()), weight)])  # fmt: skip
        model = LogisticRegression(C=0.1, max_iter=2000)
        model.fit(X, target, sample_weight=weights)
        return model.decision_function(scaler.transform(features))

    return scores


def neighbour_blend(logits, features, y, scaler):
    """The logit plus the logit of pneumonia among the nearest labelled local ones."""
    scaled = scaler.transform(features)

    def scores(local):
        distances = ((scaled[:, None, :] - scaled[local][None]) ** 2).sum(-1)
        distances[np.flatnonzero(local), np.arange(int(local.sum()))] = np.inf
        nearest = np.argsort(distances, axis=1)[:, :NEIGHBOURS]
        share = (y[local][nearest].sum(axis=1) + 0.5) / (NEIGHBOURS + 1)
        return logits + logit(share)

    return scores


def judge(scores_of, y, locals_, min_recall):
    """Adapted recall and specificity, bound and AUC on the rest, per resample."""
    rows = []
    for local in locals_:
        scores, rest = scores_of(local), ~local
        threshold = site_threshold(scores[local & y], min_recall)
        called = scores[rest] >= threshold
        rows.append(
            {
                "recall": float(called[y[rest]].mean()),
                "specificity": float((~called[~y[rest]]).mean()),
                "bound": best_specificity(scores[rest], y[rest], min_recall),
                "auc": float(roc_auc_score(y[rest], scores[rest])),
            }
        )
    return {
        name: {"mean": float(np.mean([r[name] for r in rows])),
               "min": float(np.min([r[name] for r in rows]))}
        for name in rows[0]
    }  # fmt: skip


def levers(network, X_external, y, X_train, y_train, X_internal):
    """Each lever's scores of the external images, as a function of the local mask."""
    logits, features = network.outputs(X_external)
    _, train_features = network.outputs(X_train)
    _, internal_features = network.outputs(X_internal)
    scaler = StandardScaler().fit(train_features)

    def fixed(scores):
        return lambda local: scores

    return {
        "none": fixed(logits),
        "test-time augmentation": fixed(augmented_logits(network, X_external)),
        "sharpened, amount 0.5": fixed(network.logits(sharpened(X_external, 0.5))),
        "sharpened, amount 1": fixed(network.logits(sharpened(X_external, 1.0))),
        "histogram matched": fixed(
            network.logits(histogram_matched(X_external, X_train[::4]))
        ),
        "CORAL on features": fixed(network.head(coral(features, internal_features))),
        "regression, local weighted 5": joint_regression(
            train_features, y_train, features, y, scaler, 5.0
        ),
        "regression, local weighted 20": joint_regression(
            train_features, y_train, features, y, scaler, 20.0
        ),
        f"{NEIGHBOURS} nearest local images": neighbour_blend(
            logits, features, y, scaler
        ),
    }


def markdown(result):
    lines = [
        "# At a new site: levers on the ranking",
        "",
        f"Command: `{result['command']}`. Machine: {result['machine']['cpu']}. "
        f"Model: `{result['model']}`; the new site: `{result['external']}`; "
        f"{result['resamples']} resamples of {result['local_images']} labelled local "
        f"images by patient, recall target {result['min_recall']:g}, judged on the "
        "rest. Mean (min) over resamples.",
        "",
        "| lever | AUC | adapted recall | adapted specificity | bound |",
        "|---|---|---|---|---|",
    ]
    for name, f in result["levers"].items():
        lines.append(
            f"| {name} | {f['auc']['mean']:.4f} | {f['recall']['mean']:.1%} "
            f"({f['recall']['min']:.1%}) | {f['specificity']['mean']:.1%} "
            f"({f['specificity']['min']:.1%}) | {f['bound']['mean']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    warnings.simplefilter("ignore", InputCheckWarning)
    pipe = load_model(args.model)
    loader, classifier = pipe[0], pipe[-1]
    data = load_chest_xray(args.data_dir)
    external = load_chest_xray(args.external)
    train, _, test = patient_split(
        data.paths, data.target, groups=data.groups, sizes=(0.8, 0.0, 0.2),
        random_state=args.seed,
    )  # fmt: skip
    pneumonia = classifier.classes_[1]
    y = external.target == pneumonia
    locals_ = [
        patients_until(external.groups, args.local_images, np.random.default_rng(r))
        for r in range(args.resamples)
    ]
    scores = levers(
        Network(classifier), loader.transform(external.paths), y,
        loader.transform(data.paths[train]), data.target[train] == pneumonia,
        loader.transform(data.paths[test]),
    )  # fmt: skip
    result = {
        "command": "python benchmarks/site_levers.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "model": str(args.model),
        "external": str(args.external),
        "resamples": args.resamples,
        "local_images": args.local_images,
        "min_recall": args.min_recall,
        "levers": {
            name: judge(scores_of, y, locals_, args.min_recall)
            for name, scores_of in scores.items()
        },
    }
    write_results(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
