"""Speed of loading, training and prediction, as ratios measured in one run.

Every contender runs in a fresh subprocess, so that its peak resident memory
(``ru_maxrss``) is its own; the timings exclude process start-up and imports.
Before any measurement, every file is read once (untimed) so that all
contenders read from the operating system's page cache, not from disk.

* Loading the train folder as 64x64 grayscale arrays in [0, 1]:
  :class:`pneumoclf.ImageLoader` (first load, then a repeated load from its
  cache) against ``keras.utils.image_dataset_from_directory`` iterated into
  one array, and against a plain sequential PIL loop.
* Training: ``PneumoniaCNNClassifier.fit`` against the same Keras model fitted
  directly with ``model.fit``, alternating the order to cancel drift.
* Prediction from file paths with a fitted pipeline, cache cold.
* Scaling: loading and training time on 25 %, 50 % and 100 % of the images.
* Latency: one warm image from its path, p50 and p95, and throughput on 1,000
  paths, for the pipeline's ``predict_proba``, the same network through
  ``model.predict``, and ONNX Runtime on the pipeline's export.

Run from the repository root::

    python benchmarks/speed.py

Writes ``speed.json`` and ``speed.md`` into ``--out``; with ``--loading-only``,
just the loaders, into ``speed_loading.json`` and ``speed_loading.md``; with
``--latency-only``, just the latency, into ``speed_latency.json`` and ``.md``.
"""

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "chest_xray"
IMAGE_SIZE = 64
BATCH_SIZE = 64
CLASSES = ("NORMAL", "PNEUMONIA")
FRACTIONS = (0.25, 0.5, 1.0)
LOADERS = ("imageloader", "keras", "pil")


# ---------------------------------------------------------------------------------
# Helpers shared by the parent and the workers
# ---------------------------------------------------------------------------------


def list_images(train_dir):
    """Image paths of ``train_dir/{NORMAL,PNEUMONIA}`` and their 0/1 labels.

    Sorted by class folder, then file name: the order in which
    ``keras.utils.image_dataset_from_directory(shuffle=False)`` yields them.
    """
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        files = sorted(
            entry.name
            for entry in os.scandir(train_dir / name)
            if entry.is_file() and not entry.name.startswith(".")
        )
        paths += [str(train_dir / name / file) for file in files]
        labels += [label] * len(files)
    return paths, np.array(labels)


def rss_mib():
    """Current resident memory of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds():
    """User plus system CPU time of this process, all threads, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(function, *args, **kwargs):
    """Call ``function`` and return ``(seconds, result)``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


# ---------------------------------------------------------------------------------
# Workers: each runs in its own process and returns a dict
# ---------------------------------------------------------------------------------


def load_with_pil(paths):
    """Sequential PIL loop: decode, grayscale, resize, scale to [0, 1]."""
    from PIL import Image

    images = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.float32)
    for row, path in enumerate(paths):
        with Image.open(path) as img:
            small = img.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE))
        images[row, :, :, 0] = np.asarray(small, dtype=np.float32) / 255
    return images


def load_with_keras(train_dir):
    """``keras.utils.image_dataset_from_directory``, iterated into one array."""
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        train_dir,
        color_mode="grayscale",
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        batch_size=BATCH_SIZE,
        shuffle=False,
        verbose=False,
    )
    return np.concatenate([batch.numpy() for batch, _ in dataset]) / 255


def worker_load(spec):
    """Time one loader; ``imageloader`` also times repeated loads from its cache."""
    paths, name = spec["paths"], spec["loader"]
    if name == "pil":
        from PIL import Image  # noqa: F401

        load = load_with_pil
        argument = paths
    elif name == "keras":
        import keras  # noqa: F401

        load = load_with_keras
        argument = spec["train_dir"]
    else:
        from pneumoclf import ImageLoader
        from pneumoclf.preprocessing import clear_cache

        clear_cache()
        load = ImageLoader(image_size=IMAGE_SIZE).transform
        argument = paths
    baseline = rss_mib()
    seconds, images = timed(load, argument)
    result = {
        "seconds": seconds,
        "n_images": len(images),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
        "threads": "tf.data autotune" if name == "keras" else 1,
    }
    if name == "imageloader":
        from pneumoclf.preprocessing import cache_info

        result["threads"] = min(4, os.cpu_count() or 1)  # n_jobs=None
        warm = [timed(load, argument)[0] for _ in range(spec["warm_repeats"])]
        result["warm_seconds"] = warm
        result["cache"] = cache_info()._asdict()
        pixels = list(np.round(images[..., 0] * 255).astype(np.uint8))
        result["floor_seconds"] = [
            timed(stat_and_fill, paths, pixels)[0] for _ in range(spec["warm_repeats"])
        ]
    if spec.get("save"):
        np.save(spec["save"], images)
    return result


def stat_and_fill(paths, pixels):
    """What any repeated load that notices changed files must do, and no more.

    One ``os.stat`` per file, and 8-bit ``pixels`` scaled into a fresh ``float32``
    output: the floor under a repeated load from ``ImageLoader``'s cache.
    """
    for path in paths:
        os.stat(path)
    images = np.empty((len(pixels), *pixels[0].shape, 1), dtype=np.float32)
    np.concatenate(pixels, out=images.reshape(-1, pixels[0].shape[1]), casting="unsafe")
    images /= 255
    return images


def fit_direct(X, y, epochs):
    """Build the classifier's network with ``build_cnn`` and ``model.fit`` it."""
    import keras

    from pneumoclf.architecture import build_cnn

    keras.utils.set_random_seed(0)
    model = build_cnn(X.shape[1:], rotation=0, zoom=0, shift=0, contrast=0, seed=0)
    model.fit(X, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
    return model


def fit_wrapper(X, y, epochs):
    """``PneumoniaCNNClassifier.fit`` without augmentation or early stopping."""
    from pneumoclf import PneumoniaCNNClassifier

    clf = PneumoniaCNNClassifier(
        epochs=epochs,
        batch_size=BATCH_SIZE,
        early_stopping=False,
        rotation=0,
        zoom=0,
        shift=0,
        contrast=0,
        random_state=0,
    )
    return clf.fit(X, y)


def worker_train(spec):
    """Wrapper vs direct Keras fits, alternating the order round by round."""
    from pneumoclf import ImageLoader

    X = ImageLoader(image_size=IMAGE_SIZE).transform(spec["paths"])
    y = np.array(spec["labels"], dtype=np.float32)
    contenders = {"wrapper": fit_wrapper, "keras": fit_direct}
    for fit in contenders.values():  # one warm-up epoch each
        fit(X, y, 1)
    times = {name: [] for name in contenders}
    cpu_times = {name: [] for name in contenders}
    order = list(contenders)
    for _ in range(spec["rounds"]):
        for name in order:
            cpu_start = cpu_seconds()
            times[name].append(timed(contenders[name], X, y, spec["epochs"])[0])
            cpu_times[name].append(cpu_seconds() - cpu_start)
        order.reverse()
    return {
        "n_images": len(X),
        "epochs": spec["epochs"],
        "seconds": times,
        "cpu_seconds": cpu_times,
    }


def worker_predict(spec):
    """Fit a pipeline for one epoch, then time ``predict_proba(paths)``."""
    from sklearn.pipeline import Pipeline

    from pneumoclf import ImageLoader, PneumoniaCNNClassifier
    from pneumoclf.preprocessing import clear_cache

    paths = spec["paths"]
    pipe = Pipeline(
        [
            ("load", ImageLoader(image_size=IMAGE_SIZE)),
            (
                "cnn",
                PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0),
            ),
        ]
    )
    pipe.fit(paths, spec["labels"])
    pipe.predict_proba(paths[:BATCH_SIZE])  # build the predict function
    clear_cache()
    cold, _ = timed(pipe.predict_proba, paths)
    warm, _ = timed(pipe.predict_proba, paths)
    X = pipe[0].transform(paths)
    model_only, _ = timed(pipe[1].predict_proba, X)
    return {
        "n_images": len(paths),
        "cold_seconds": cold,
        "warm_seconds": warm,
        "model_only_seconds": model_only,
        "peak_rss_mib": peak_rss_mib(),
    }


def worker_scaling(spec):
    """Cold load and training time on growing stratified shares of the images."""
    from sklearn.model_selection import train_test_split

    from pneumoclf import ImageLoader
    from pneumoclf.preprocessing import clear_cache

    paths = np.array(spec["paths"])
    labels = np.array(spec["labels"], dtype=np.float32)
    loader = ImageLoader(image_size=IMAGE_SIZE)
    every_20th = slice(None, None, 20)  # both classes, for a warm-up fit
    fit_wrapper(loader.transform(paths[every_20th]), labels[every_20th], 1)
    rows = []
    for fraction in FRACTIONS:
        if fraction < 1:
            part, _ = train_test_split(
                np.arange(len(paths)),
                train_size=fraction,
                stratify=labels,
                random_state=0,
            )
        else:
            part = np.arange(len(paths))
        clear_cache()
        load_seconds, X = timed(loader.transform, paths[part])
        fit_seconds, _ = timed(fit_wrapper, X, labels[part], spec["epochs"])
        rows.append(
            {
                "fraction": fraction,
                "n_images": len(part),
                "load_seconds": load_seconds,
                "fit_seconds": fit_seconds,
                "epochs": spec["epochs"],
            }
        )
    return {"rows": rows}


def worker_latency(spec):
    """Latency of one warm image from its path, and throughput, per contender.

    The pipeline's ``predict_proba``, the same loader and network through
    ``model.predict`` (what every prediction paid before the direct call), and
    ONNX Runtime on the pipeline's export. The images are in the loader's cache,
    so that the network's call is what differs.
    """
    from sklearn.pipeline import Pipeline

    from pneumoclf import ImageLoader, PneumoniaCNNClassifier
    from pneumoclf.export import OnnxPneumoniaModel, export_onnx

    paths, labels = spec["paths"], spec["labels"]
    pipe = Pipeline(
        [
            ("load", ImageLoader(image_size=IMAGE_SIZE)),
            (
                "cnn",
                PneumoniaCNNClassifier(epochs=1, early_stopping=False, random_state=0),
            ),
        ]
    ).fit(paths[::10], labels[::10])
    onnx_file = Path(spec["workdir"]) / "model.onnx"
    onnx_model = OnnxPneumoniaModel(export_onnx(pipe, onnx_file))
    loader, network = pipe[0], pipe[-1].model_

    def through_model_predict(batch):
        return network.predict(loader.transform(batch), verbose=0)

    contenders = {
        "pipeline predict_proba": pipe.predict_proba,
        "loader + model.predict": through_model_predict,
        "ONNX Runtime (OnnxPneumoniaModel)": onnx_model.predict_proba,
    }
    step = max(1, len(paths) // spec["n_images"])
    batch = paths[::step][: spec["n_images"]]
    loader.transform(batch)  # into the cache
    for predict in contenders.values():
        for _ in range(3):
            predict(batch[:1])
        predict(batch)
    latency = {name: [] for name in contenders}
    for round_ in range(spec["latency_rounds"]):
        names = list(contenders)
        names = names[round_ % len(names) :] + names[: round_ % len(names)]
        path = batch[round_ % len(batch)]
        for name in names:
            start = time.perf_counter()
            contenders[name]([path])
            latency[name].append(time.perf_counter() - start)
    throughput = {name: [] for name in contenders}
    for _ in range(spec["throughput_rounds"]):
        for name, predict in contenders.items():
            start = time.perf_counter()
            predict(batch)
            throughput[name].append(time.perf_counter() - start)
    largest_difference = float(
        np.abs(onnx_model.predict_proba(batch) - pipe.predict_proba(batch)).max()
    )
    return {
        "n_images": len(batch),
        "latency_seconds": latency,
        "throughput_seconds": throughput,
        "onnx_largest_probability_difference": largest_difference,
    }


WORKERS = {
    "load": worker_load,
    "train": worker_train,
    "predict": worker_predict,
    "scaling": worker_scaling,
    "latency": worker_latency,
}


def run_worker(kind, spec, workdir):
    """Run one worker in a fresh Python process and return its result dict."""
    spec_file = Path(workdir) / "spec.json"
    result_file = Path(workdir) / "result.json"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, __file__, "--worker", kind, str(spec_file)]
    subprocess.run(command, check=True, env=env)
    return json.loads(result_file.read_text())


# ---------------------------------------------------------------------------------
# The parent: measurements, summary, outputs
# ---------------------------------------------------------------------------------


def warm_page_cache(paths):
    """Read every file once so that later reads come from memory."""
    return sum(len(Path(path).read_bytes()) for path in paths)


def measure_loaders(paths, train_dir, rounds, warm_repeats, workdir):
    """Each loader once per round, in a rotating order, each in its own process.

    Returns
    -------
    dict
        Per loader: the list of per-round results; plus ``mean_abs_diff``, the
        mean absolute pixel difference of each loader's array from the PIL loop's.
    """
    results = {name: [] for name in LOADERS}
    arrays = {}
    for round_ in range(rounds):
        order = LOADERS[round_ % 3 :] + LOADERS[: round_ % 3]
        for name in order:
            spec = {
                "loader": name,
                "paths": paths,
                "train_dir": str(train_dir),
                "warm_repeats": warm_repeats,
            }
            if round_ == 0:
                spec["save"] = arrays[name] = str(Path(workdir) / f"{name}.npy")
            results[name].append(run_worker("load", spec, workdir))
            print(f"  load round {round_}: {name} done", flush=True)
    reference = np.load(arrays["pil"])
    results["mean_abs_diff"] = {
        name: float(np.abs(np.load(arrays[name]) - reference).mean())
        for name in LOADERS
    }
    return results


def summarize_loaders(results):
    """Median seconds, images/s, memory and ratios of the loaders."""
    summary = {}
    for name in LOADERS:
        runs = results[name]
        seconds = statistics.median(run["seconds"] for run in runs)
        peak = statistics.median(run["peak_rss_mib"] for run in runs)
        baseline = statistics.median(run["baseline_rss_mib"] for run in runs)
        summary[name] = {
            "n_images": runs[0]["n_images"],
            "seconds": seconds,
            "images_per_second": runs[0]["n_images"] / seconds,
            "peak_rss_mib": peak,
            "rss_increase_mib": peak - baseline,
            "threads": runs[0]["threads"],
            "mean_abs_diff_vs_pil": results["mean_abs_diff"][name],
        }
    counts = {summary[name]["n_images"] for name in LOADERS}
    if len(counts) != 1:
        raise RuntimeError(f"the loaders read different numbers of images: {counts}")
    warm = statistics.median(
        s for run in results["imageloader"] for s in run["warm_seconds"]
    )
    n = results["imageloader"][0]["n_images"]
    summary["imageloader_cached"] = {
        "seconds": warm,
        "images_per_second": n / warm,
    }
    floor = statistics.median(
        s for run in results["imageloader"] for s in run["floor_seconds"]
    )
    summary["repeated_load_floor"] = {"seconds": floor, "images_per_second": n / floor}
    cold = summary["imageloader"]["seconds"]
    summary["ratios"] = {
        "keras_over_imageloader": summary["keras"]["seconds"] / cold,
        "pil_over_imageloader": summary["pil"]["seconds"] / cold,
        "cache_speedup": cold / warm,
        "per_round": [
            {
                "keras_over_imageloader": keras["seconds"] / loader["seconds"],
                "cache_speedup": loader["seconds"]
                / statistics.median(loader["warm_seconds"]),
            }
            for loader, keras in zip(
                results["imageloader"], results["keras"], strict=True
            )
        ],
    }
    return summary


def summarize_training(result):
    """Median times, images/s and the wrapper's overhead over direct Keras."""
    seconds = result["seconds"]
    medians = {name: statistics.median(times) for name, times in seconds.items()}
    fastest = {name: min(times) for name, times in seconds.items()}
    cpu = result["cpu_seconds"]
    cpu_medians = {name: statistics.median(times) for name, times in cpu.items()}
    seen = result["n_images"] * result["epochs"]
    paired = [w / k for w, k in zip(seconds["wrapper"], seconds["keras"], strict=True)]
    return {
        "epochs": result["epochs"],
        "n_images": result["n_images"],
        "seconds": seconds,
        "median_seconds": medians,
        "min_seconds": fastest,
        "images_per_second": {name: seen / t for name, t in medians.items()},
        "overhead": medians["wrapper"] / medians["keras"] - 1,
        "overhead_of_minimums": fastest["wrapper"] / fastest["keras"] - 1,
        "paired_overhead_median": statistics.median(paired) - 1,
        "cpu_seconds": cpu,
        "median_cpu_seconds": cpu_medians,
        "cpu_overhead": cpu_medians["wrapper"] / cpu_medians["keras"] - 1,
    }


def machine():
    """CPU, cores, memory, load and library versions of this machine."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    total_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024**2, 1),
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in ("pneumoclf", "tensorflow", "keras", "pillow", "numpy")
        },
    }


def _faster(ratio):
    """``"2.5x faster"`` for a time ratio above 1, ``"1.3x slower"`` below."""
    if ratio >= 1:
        return f"{ratio:.1f}x faster"
    return f"{1 / ratio:.1f}x slower"


def _spread(ratios):
    """``"1.1x to 1.5x"``: the smallest and largest of time ratios."""
    return f"{min(ratios):.1f}x to {max(ratios):.1f}x"


def markdown(result):
    """The Markdown report: one table per measurement made."""
    info = result["machine"]
    lines = [
        "# Speed",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB "
        f"(shared; load average {result['load_average_before'][0]:.1f} before, "
        f"{result['load_average_after'][0]:.1f} after); "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + ".",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    if "loading" in result:
        lines += _loading_lines(result)
    if "training" in result:
        lines += _training_lines(result["training"])
        lines += _prediction_lines(result["prediction"])
        lines += _scaling_lines(result["scaling"])
    if "latency" in result:
        lines += _latency_lines(result["latency"])
    return "\n".join(lines)


def _loading_lines(result):
    load = result["loading"]
    n = load["imageloader"]["n_images"]
    cold = load["imageloader"]["seconds"]
    rows = [
        ("`ImageLoader`, first load", load["imageloader"]),
        ("`ImageLoader`, repeated load (cache)", load["imageloader_cached"]),
        ("`keras.utils.image_dataset_from_directory`", load["keras"]),
        ("PIL loop, one image at a time", load["pil"]),
    ]
    if "repeated_load_floor" in load:  # not measured by earlier versions
        floor = "floor of a repeated load: `os.stat` per file + fresh float32 output"
        rows.insert(2, (floor, load["repeated_load_floor"]))
    lines = [
        f"## Loading {n:,} train images as {IMAGE_SIZE}x{IMAGE_SIZE} grayscale",
        "",
        "Every file was read once before the measurements, so all contenders read "
        "from the page cache. Each contender ran in its own process; median of "
        f"{result['rounds']} rounds in rotating order. Memory: peak resident set, and "
        "its increase over the process after imports.",
        "",
        "| loader | seconds | images/s | time vs ImageLoader | peak MiB "
        "| increase MiB | mean abs. diff. vs PIL |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in rows:
        peak = row.get("peak_rss_mib")
        cells = [
            f"{row['seconds']:.3f}",
            f"{row['images_per_second']:,.0f}",
            f"{row['seconds'] / cold:.2f}x",
            "" if peak is None else f"{peak:.0f}",
            "" if peak is None else f"{row['rss_increase_mib']:.0f}",
            "" if peak is None else f"{row['mean_abs_diff_vs_pil']:.4f}",
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratios = load["ratios"]
    per_round = {
        key: [round_[key] for round_ in ratios["per_round"]]
        for key in ("keras_over_imageloader", "cache_speedup")
    }
    return [
        *lines,
        "",
        f"`ImageLoader` (first load) is {_faster(ratios['keras_over_imageloader'])} "
        f"than the Keras loader and {_faster(ratios['pil_over_imageloader'])} than "
        "the PIL loop; a repeated load from its cache is "
        f"{_faster(ratios['cache_speedup'])} than the first. Round by round, as "
        "ratios of times: the Keras loader over the first load "
        f"{_spread(per_round['keras_over_imageloader'])}; the first load over the "
        f"round's median repeated load {_spread(per_round['cache_speedup'])}.",
        "",
    ]


def _training_lines(train):
    lines = [
        f"## Training: {train['epochs']} epochs on {train['n_images']:,} images, "
        "batch 64, no augmentation",
        "",
        "One warm-up epoch each, then alternating rounds; "
        f"{len(train['seconds']['wrapper'])} fits each. Images/s from the median.",
        "",
        "| trainer | median seconds | fastest seconds | median CPU seconds "
        "| images/s |",
        "|---|---|---|---|---|",
    ]
    for name, label in (
        ("wrapper", "`PneumoniaCNNClassifier.fit`"),
        ("keras", "`build_cnn` + `model.fit`"),
    ):
        lines.append(
            f"| {label} | {train['median_seconds'][name]:.1f} "
            f"| {train['min_seconds'][name]:.1f} "
            f"| {train['median_cpu_seconds'][name]:.1f} "
            f"| {train['images_per_second'][name]:,.0f} |"
        )
    lines += [
        "",
        f"Wrapper overhead: {100 * train['overhead']:+.1f}% (ratio of medians), "
        f"{100 * train['overhead_of_minimums']:+.1f}% (ratio of fastest fits), "
        f"{100 * train['paired_overhead_median']:+.1f}% (median of paired rounds); "
        f"in CPU time (all threads), {100 * train['cpu_overhead']:+.1f}% "
        "(ratio of medians).",
        "",
    ]
    return lines


def _prediction_lines(pred):
    lines = [
        f"## Prediction from {pred['n_images']:,} file paths (fitted pipeline)",
        "",
        "| case | seconds | images/s |",
        "|---|---|---|",
    ]
    for key, label in (
        ("cold_seconds", "`predict_proba(paths)`, cache cold"),
        ("warm_seconds", "`predict_proba(paths)`, cache warm"),
        ("model_only_seconds", "network only, on loaded arrays"),
    ):
        lines.append(
            f"| {label} | {pred[key]:.2f} | {pred['n_images'] / pred[key]:,.0f} |"
        )
    return [*lines, ""]


def summarize_latency(raw):
    rows = {}
    for name, seconds in raw["latency_seconds"].items():
        throughput = statistics.median(raw["throughput_seconds"][name])
        rows[name] = {
            "p50_ms": 1000 * float(np.percentile(seconds, 50)),
            "p95_ms": 1000 * float(np.percentile(seconds, 95)),
            "images_per_second": raw["n_images"] / throughput,
        }
    return {**raw, "summary": rows}


def _latency_lines(latency):
    summary = latency["summary"]
    baseline = summary["loader + model.predict"]
    lines = [
        "## Prediction latency from a path (cache warm)",
        "",
        f"{len(next(iter(latency['latency_seconds'].values())))} single-image "
        f"calls per contender in rotating order; throughput on "
        f"{latency['n_images']:,} paths, median of "
        f"{len(next(iter(latency['throughput_seconds'].values())))} rounds.",
        "",
        "| contender | p50 ms, 1 image | p95 ms | vs model.predict (p50) "
        "| images/s, batch |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | "
            f"{baseline['p50_ms'] / row['p50_ms']:.1f}x | "
            f"{row['images_per_second']:,.0f} |"
        )
    lines.append("")
    lines.append(
        "Largest difference between the ONNX export's probabilities and the "
        f"pipeline's: {latency['onnx_largest_probability_difference']:.1e}."
    )
    return [*lines, ""]


def _scaling_lines(scaling):
    lines = [
        "## Scaling with the number of images",
        "",
        "| share | images | load s (cold) | load images/s "
        f"| training s ({scaling['rows'][0]['epochs']} epochs) "
        "| training images/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in scaling["rows"]:
        n_images, load_s, fit_s = (
            row["n_images"],
            row["load_seconds"],
            row["fit_seconds"],
        )
        lines.append(
            f"| {row['fraction']:.0%} | {n_images:,} | {load_s:.2f} "
            f"| {n_images / load_s:,.0f} | {fit_s:.1f} "
            f"| {n_images * row['epochs'] / fit_s:,.0f} |"
        )
    return [*lines, ""]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data",
        nargs="?",
        type=Path,
        default=DEFAULT_DATA,
        help="chest_xray folder holding train/{NORMAL,PNEUMONIA} (%(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )
    parser.add_argument("--rounds", type=int, default=5, help="loader rounds")
    parser.add_argument("--warm-repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="timed training epochs")
    parser.add_argument("--train-rounds", type=int, default=5)
    parser.add_argument("--scaling-epochs", type=int, default=2)
    parser.add_argument(
        "--loading-only",
        action="store_true",
        help="measure the loaders only, into speed_loading.json and .md",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="measure prediction latency only, into speed_latency.json and .md",
    )
    parser.add_argument("--latency-rounds", type=int, default=200)
    parser.add_argument("--throughput-images", type=int, default=1000)
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:  # inside a measuring subprocess: args.data is the spec file
        result = WORKERS[args.worker](json.loads(args.data.read_text()))
        (args.data.parent / "result.json").write_text(json.dumps(result))
        return

    train_dir = args.data / "train"
    paths, labels = list_images(train_dir)
    result = {
        "command": shlex.join(["python", *sys.argv]),
        "data": str(train_dir),
        "machine": machine(),
        "load_average_before": os.getloadavg(),
        "rounds": args.rounds,
        "page_cache_warmed_bytes": warm_page_cache(paths),
    }
    common = {"paths": paths, "labels": labels.tolist()}
    with tempfile.TemporaryDirectory() as workdir:
        if not args.latency_only:
            print(f"loading {len(paths)} images ...", flush=True)
            raw = measure_loaders(
                paths, train_dir, args.rounds, args.warm_repeats, workdir
            )
            result["loading_runs"] = raw
            result["loading"] = summarize_loaders(raw)
        if not args.loading_only and not args.latency_only:
            result.update(measure_models(args, common, workdir))
        if not args.loading_only:
            result["latency"] = measure_latency(args, common, workdir)
    result["load_average_after"] = os.getloadavg()

    name = "speed"
    if args.loading_only:
        name = "speed_loading"
    elif args.latency_only:
        name = "speed_latency"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / f"{name}.md").write_text(table)
    print(table)


def measure_models(args, common, workdir):
    """Training, prediction and scaling, each in its own process."""
    print("training ...", flush=True)
    spec = {**common, "epochs": args.epochs, "rounds": args.train_rounds}
    training = summarize_training(run_worker("train", spec, workdir))
    print("prediction ...", flush=True)
    prediction = run_worker("predict", common, workdir)
    print("scaling ...", flush=True)
    spec = {**common, "epochs": args.scaling_epochs}
    scaling = run_worker("scaling", spec, workdir)
    return {"training": training, "prediction": prediction, "scaling": scaling}


def measure_latency(args, common, workdir):
    """Prediction latency and throughput, in its own process."""
    print("latency ...", flush=True)
    spec = {
        **common,
        "workdir": workdir,
        "n_images": args.throughput_images,
        "latency_rounds": args.latency_rounds,
        "throughput_rounds": 5,
    }
    return summarize_latency(run_worker("latency", spec, workdir))


if __name__ == "__main__":
    main()
