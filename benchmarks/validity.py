"""The input check: the real chest X-rays it refuses, the other images it stops.

The recipe of ``pneumoclf train`` is trained on the training patients of a split of
``chest_xray`` by patient (seed ``--seeds``; 85% of the patients, the rest held
out), its input check fitted with it. Reported:

* the share refused of the held-out patients' X-rays, and of an external set
  (by default ``../shared/data/external``; nothing of it reaches the fit);
* the share stopped of images that are no chest X-ray, found in installed packages
  (photographs and a portrait from scikit-learn and matplotlib, an MR slice, terrain
  maps, logos and screenshots, DICOM files of other modalities from pydicom) and
  crops of the photographs; an image counts as stopped when it gets no label: the
  check refuses it, or the loader cannot read it as an X-ray. Each refused image's
  reason is kept.

Run from the repository root::

    python benchmarks/validity.py

Writes ``validity.json`` and ``validity.md`` into ``--out``.
"""

import gzip
import shlex
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from quality import REPO_ROOT, common_parser, machine, pipeline_overrides, write_results

from pneumoclf import load_chest_xray, patient_split
from pneumoclf.datasets import find_images
from pneumoclf.exceptions import ImageLoadError, InputCheckWarning
from pneumoclf.recipes import make_pipeline

DEFAULT_EXTERNAL = REPO_ROOT.parent / "shared" / "data" / "external"
HELD_OUT_SHARE = 0.15


def other_images(folder):
    """Files of images that are no chest X-ray, gathered from installed packages."""
    import matplotlib
    import pydicom
    import sklearn

    sample_data = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data"
    sklearn_images = Path(sklearn.__file__).parent / "datasets" / "images"
    pydicom_files = Path(pydicom.__file__).parent / "data" / "test_files"
    photographs = [
        sklearn_images / "china.jpg",
        sklearn_images / "flower.jpg",
        sample_data / "grace_hopper.jpg",
        sample_data / "Minduka_Present_Blue_Pack.png",
    ]
    files = [*photographs, sample_data / "logo2.png"]
    files += _crops(photographs, folder)
    files += _arrays_as_images(sample_data, folder)
    files += sorted(pydicom_files.glob("*.dcm"))
    files += _screenshots()
    return [Path(path) for path in files if Path(path).is_file()]


def _crops(photographs, folder):
    """Four quadrants and the centre of each photograph, as files of their own."""
    crops = []
    for photograph in photographs:
        image = Image.open(photograph).convert("RGB")
        width, height = image.size
        boxes = [
            (0, 0, width // 2, height // 2),
            (width // 2, 0, width, height // 2),
            (0, height // 2, width // 2, height),
            (width // 2, height // 2, width, height),
            (width // 4, height // 4, 3 * width // 4, 3 * height // 4),
        ]
        for number, box in enumerate(boxes):
            path = folder / f"{photograph.stem}_crop{number}.png"
            image.crop(box).save(path)
            crops.append(path)
    return crops


def _arrays_as_images(sample_data, folder):
    """matplotlib's MR slice and terrain maps, written as 8-bit PNGs."""
    arrays = {}
    with gzip.open(sample_data / "s1045.ima.gz") as file:
        arrays["mr_slice"] = np.frombuffer(file.read(), ">u2").reshape(256, 256)
    for name in ("jacksboro_fault_dem", "topobathy"):
        with np.load(sample_data / f"{name}.npz") as data:
            arrays[name] = data[data.files[0]]
    paths = []
    for name, values in arrays.items():
        values = np.asarray(values, dtype=np.float64)
        scaled = (values - values.min()) / max(np.ptp(values), 1e-12)
        path = folder / f"{name}.png"
        Image.fromarray((scaled * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _screenshots():
    """Figures, diagrams and icons of installed documentation."""
    found = []
    for root in (Path("/usr/share/doc"), Path(sys.prefix) / "share"):
        if root.is_dir():
            found += sorted(root.rglob("*.png"))[:40]
    return found


def results_of(pipe, paths):
    """Per file, ``"ok"``, why the check refuses it, or why it cannot be read."""
    results = []
    for path in paths:
        try:
            images = pipe[0].transform([path])
        except ImageLoadError as error:
            results.append(f"unreadable: {error.failures[0][1]}")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputCheckWarning)
            results.append(str(pipe[-1].check_inputs(images)[0]))
    return results


def refused_share(results):
    return float(np.mean([result != "ok" for result in results]))


def _kind(result):
    if result == "ok":
        return "passed"
    return result.split(" (")[0].split(":")[0]


def study(data, external_paths, seed, overrides, scratch):
    train, _, test = patient_split(
        data.paths, data.target, groups=data.groups,
        sizes=(1 - HELD_OUT_SHARE, 0.0, HELD_OUT_SHARE), random_state=seed,
    )  # fmt: skip
    pipe = make_pipeline(cnn__random_state=seed, **overrides)
    started = time.perf_counter()
    pipe.fit(data.paths[train], data.target[train], cnn__groups=data.groups[train])
    fit_seconds = time.perf_counter() - started
    sets = {
        "held_out": list(data.paths[test]),
        "external": list(external_paths),
        "not_chest": other_images(scratch),
    }
    sets["not_chest_pictures"] = [p for p in sets["not_chest"] if p.suffix != ".dcm"]
    outcome = {"seed": seed, "fit_seconds": round(fit_seconds, 1)}
    for name, paths in sets.items():
        results = results_of(pipe, paths)
        outcome[name] = {
            "n_images": len(paths),
            "refused": refused_share(results),
            "reasons": dict(Counter(map(_kind, results))),
            "passed": [str(p) for p, r in zip(paths, results, strict=True) if r == "ok"]
            if name.startswith("not_chest")
            else [],
            "refused_files": [
                f"{Path(p).name}: {r}"
                for p, r in zip(paths, results, strict=True)
                if r != "ok"
            ]
            if not name.startswith("not_chest")
            else [],
        }
    outcome["threshold"] = pipe[-1].input_reference_.threshold
    return outcome


def markdown(result):
    lines = [
        "# Input check",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores.",
        "",
        f"Command: `{result['command']}`",
        "",
        f"The recipe trained on {1 - HELD_OUT_SHARE:.0%} of the patients of "
        f"{result['data']} (split seed per row), input check fitted with it.",
        "",
        "| seed | held-out X-rays refused | external X-rays refused | "
        "other images stopped | of them, pictures (no DICOM) | feature threshold |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        cells = [
            f"{run[name]['refused']:.1%} of {run[name]['n_images']}"
            for name in ("held_out", "external", "not_chest", "not_chest_pictures")
        ]
        lines.append(
            f"| {run['seed']} | {' | '.join(cells)} | {run['threshold']:.1f} |"
        )
    for run in result["runs"]:
        lines += ["", f"Seed {run['seed']}, why images were refused:", ""]
        for name in ("held_out", "external", "not_chest"):
            reasons = ", ".join(
                f"{kind} {count}"
                for kind, count in sorted(run[name]["reasons"].items())
            )
            lines.append(f"* {name}: {reasons}")
        if run["not_chest"]["passed"]:
            passed = ", ".join(Path(p).name for p in run["not_chest"]["passed"])
            lines.append(f"* other images that passed: {passed}")
        for name in ("held_out", "external"):
            if run[name]["refused_files"]:
                refused = "; ".join(run[name]["refused_files"])
                lines.append(f"* {name} X-rays refused: {refused}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = common_parser(__doc__.split("\n\n")[0], seeds=[0])
    parser.add_argument("--external", type=Path, default=DEFAULT_EXTERNAL)
    args = parser.parse_args(argv)
    data = load_chest_xray(args.data)
    external = find_images(args.external) if args.external.is_dir() else []
    overrides = pipeline_overrides(args)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            runs.append(study(data, external, seed, overrides, Path(scratch)))
    result = {
        "command": "python benchmarks/validity.py " + shlex.join(argv or sys.argv[1:]),
        "machine": machine(),
        "data": str(args.data),
        "external": str(args.external),
        "runs": runs,
    }
    write_results(args.out, "validity", result, markdown(result))


if __name__ == "__main__":
    main()
