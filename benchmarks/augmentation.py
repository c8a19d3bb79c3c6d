"""Where the recipe's augmentation costs least: three layers, one affine, or tf.data.

The recipe augments with a rotation, a zoom and a translation, then a contrast
change. Three ways to apply the same transforms are timed:

* ``three_layers``: what the classifier does, Keras' ``RandomRotation``,
  ``RandomZoom`` and ``RandomTranslation`` inside the network, each resampling
  every training image;
* ``one_affine``: one layer (``OneAffine`` below) that composes the three into
  one matrix per image and resamples once (``keras.ops.image.affine_transform``);
* ``tf_data``: the three layers applied in the input pipeline instead, in
  parallel with training (``Dataset.map(num_parallel_calls=AUTOTUNE)``).

Each trains the recipe's network for ``--epochs`` epochs on random 64x64 images
(after one warm-up epoch that traces the graphs), interleaved in the same run, so
that the ratios compare like with like; the median of the runs is reported, with
their range. Run from the repository root::

    python benchmarks/augmentation.py --epochs 3

Writes ``augmentation.json`` and ``augmentation.md`` into ``--out``.
"""

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from quality import machine, write_results

from pneumoclf.architecture import augmentation_layers, build_cnn
from pneumoclf.recipes import IMAGE_SIZE, make_pipeline

VARIANTS = ("three_layers", "one_affine", "tf_data")


class OneAffine(keras.layers.Layer):
    """Rotation, zoom and translation drawn per image, resampled once."""

    def __init__(self, rotation, zoom, shift, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift = rotation, zoom, shift
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        n = keras.ops.shape(images)[0]
        height = keras.ops.cast(keras.ops.shape(images)[1], "float32")
        width = keras.ops.cast(keras.ops.shape(images)[2], "float32")
        angle = self._uniform(n, 2 * math.pi * self.rotation)
        scale = 1.0 + self._uniform(n, self.zoom)
        dx = self._uniform(n, self.shift) * width
        dy = self._uniform(n, self.shift) * height
        cos, sin = keras.ops.cos(angle) * scale, keras.ops.sin(angle) * scale
        # An output pixel (x, y) reads the input at A (x, y) + b, about the centre.
        cx, cy = (width - 1) / 2, (height - 1) / 2
        bx = cx - cos * cx + sin * cy + dx
        by = cy - sin * cx - cos * cy + dy
        zeros = keras.ops.zeros_like(angle)
        transform = keras.ops.stack([cos, -sin, bx, sin, cos, by, zeros, zeros], 1)
        return keras.ops.image.affine_transform(
            images, transform, interpolation="bilinear", fill_mode="constant"
        )

    def _uniform(self, n, bound):
        return keras.random.uniform(
            (n,), -bound, bound, seed=self.seed_generator, dtype="float32"
        )


def geometric(params):
    return {name: params[f"cnn__{name}"] for name in ("rotation", "zoom", "shift")}


def network(variant, params, input_shape):
    """The recipe's network, with its augmentation where ``variant`` puts it."""
    settings = dict(dropout=params["cnn__dropout"], seed=0)
    contrast = params["cnn__contrast"]
    if variant == "three_layers":
        return build_cnn(
            input_shape, **geometric(params), contrast=contrast, **settings
        )
    model = build_cnn(input_shape, **settings)
    if variant == "tf_data":
        return model
    inputs = keras.Input(input_shape)
    x = OneAffine(**geometric(params), seed=1)(inputs)
    x = augmentation_layers(contrast=contrast, seed=0)[0](x)
    wrapped = keras.Model(inputs, model(x))
    # Compiled as build_cnn compiles, so that only the augmentation differs.
    wrapped.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return wrapped


def dataset(variant, params, X, y, batch_size):
    data = tf.data.Dataset.from_tensor_slices((X, y)).shuffle(len(X), seed=0)
    data = data.batch(batch_size)
    if variant == "tf_data":
        layers = augmentation_layers(
            **geometric(params), contrast=params["cnn__contrast"], seed=0
        )

        def augment(images, labels):
            for layer in layers:
                images = layer(images, training=True)
            return images, labels

        data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def seconds_per_epoch(variant, params, X, y, epochs, batch_size):
    model = network(variant, params, X.shape[1:])
    data = dataset(variant, params, X, y, batch_size)
    model.fit(data, epochs=1, verbose=0)  # traces the graphs
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0)
    return (time.perf_counter() - start) / epochs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    params = make_pipeline().get_params()
    batch_size = params["cnn__batch_size"]
    rng = np.random.default_rng(0)
    X = rng.random((args.n_images, IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.float32)
    y = (rng.random(args.n_images) < 0.74).astype(np.float32)
    times = {variant: [] for variant in args.variants}
    for _ in range(args.repeats):  # interleaved, so that drift hits every variant
        for variant in args.variants:
            times[variant].append(
                seconds_per_epoch(variant, params, X, y, args.epochs, batch_size)
            )
    median = {variant: float(np.median(values)) for variant, values in times.items()}
    result = {
        "command": shlex.join([sys.executable.split("/")[-1], *sys.argv]),
        "machine": machine(),
        "n_images": args.n_images,
        "seconds_per_epoch": times,
    }
    rows = [
        f"| {variant} | {median[variant]:.2f} | {min(times[variant]):.2f} to "
        f"{max(times[variant]):.2f} | {median['three_layers'] / median[variant]:.2f}x |"
        for variant in args.variants
    ]
    table = "\n".join(
        [
            "# Augmentation: three layers, one affine, or tf.data",
            "",
            f"The recipe's network and augmentation, {args.n_images} random "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} images, batch {batch_size}; {args.repeats} "
            f"interleaved runs of {args.epochs} epochs each, after a warm-up epoch. "
            f"Command: `{result['command']}`. Machine: {result['machine']['cpu']}.",
            "",
            "| variant | median s per epoch | range | median speed-up over three "
            "layers |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )
    write_results(args.out, "augmentation", result, table)


if __name__ == "__main__":
    main()
