"""DICOM files per second: ImageLoader against a plain pydicom loop, in one run.

Real chest X-rays of the train folder are written as 12-bit DX DICOM files (the
pixels times 16, a window centre and width, MONOCHROME2) at their own size and
upscaled to ``--sizes`` (hospital DX images are 2,000 to 3,000 pixels a side),
uncompressed and RLE Lossless. Each file set is then loaded as 64x64 images in
[0, 1] by

* ``ImageLoader(cache=False)``, on its default threads;
* ``ImageLoader`` again with its cache warm (a search's repeated loads);
* the loop a user would write: ``pydicom.dcmread``, ``pixel_array``,
  ``apply_modality_lut``, ``apply_voi_lut``, scaling to [0, 1] and a PIL bilinear
  resize, one file after another.

Rounds alternate the contenders, after one untimed read of every file (the
operating system's page cache), and the medians are compared.

Run from the repository root::

    python benchmarks/dicom.py [chest_xray] --n-files 400

Writes ``dicom.json`` and ``dicom.md`` into ``--out``.
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "chest_xray"
IMAGE_SIZE = 64


def source_images(data, n_files):
    """The first ``n_files`` train images, NORMAL and PNEUMONIA alternating."""
    folders = [data / "train" / label for label in ("NORMAL", "PNEUMONIA")]
    lists = [sorted(folder.iterdir()) for folder in folders]
    paths = [path for pair in zip(*lists, strict=False) for path in pair]
    return paths[:n_files]


def write_dicom(path, pixels, syntax):
    """``pixels`` (8-bit) as a 12-bit DX file with the window that shows them."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = DigitalXRayImageStorageForPresentation
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.Modality = "DX"
    dataset.PatientID = path.stem
    dataset.set_pixel_data(pixels.astype(np.uint16) * 16, "MONOCHROME2", 12)
    dataset.WindowCenter = 2048
    dataset.WindowWidth = 4096
    if syntax is not None:
        dataset.compress(syntax)
    dataset.save_as(path, enforce_file_format=True)


def make_files(sources, folder, side, syntax):
    folder.mkdir(parents=True)
    paths = []
    for i, source in enumerate(sources):
        with Image.open(source) as img:
            gray = img.convert("L")
            if side is not None:
                gray = gray.resize((side, side), Image.Resampling.BILINEAR)
        paths.append(folder / f"{i:05d}.dcm")
        write_dicom(paths[-1], np.asarray(gray), syntax)
    return paths


def pydicom_loop(paths):
    """What a user would write without pneumoclf."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    images = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.float32)
    for row, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        modality = apply_modality_lut(dataset.pixel_array, dataset)
        values = apply_voi_lut(modality, dataset)
        values = values.astype(np.float32) / 4095
        resized = Image.fromarray(values).resize(
            (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR
        )
        images[row, :, :, 0] = np.asarray(resized)
    return images


def time_contenders(paths, rounds):
    from pneumoclf import ImageLoader
    from pneumoclf.preprocessing import clear_cache

    cold = ImageLoader(image_size=IMAGE_SIZE, cache=False)
    warm = ImageLoader(image_size=IMAGE_SIZE)
    contenders = {
        "imageloader": cold.transform,
        "imageloader_cached": warm.transform,
        "pydicom_loop": pydicom_loop,
    }
    for path in paths:  # the page cache, untimed
        path.read_bytes()
    clear_cache()
    warm.transform(paths)
    reference = pydicom_loop(paths)
    largest_difference = float(np.abs(cold.transform(paths) - reference).max())
    seconds = {name: [] for name in contenders}
    for round_ in range(rounds):
        order = list(contenders) if round_ % 2 == 0 else list(contenders)[::-1]
        for name in order:
            start = time.perf_counter()
            contenders[name](paths)
            seconds[name].append(time.perf_counter() - start)
    return seconds, largest_difference


def summarize(seconds, n_files):
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    baseline = medians["pydicom_loop"]
    return {
        name: {
            "median_s": median,
            "files_per_s": n_files / median,
            "speedup_vs_pydicom_loop": baseline / median,
            "rounds_s": seconds[name],
        }
        for name, median in medians.items()
    }


def markdown(result):
    lines = [
        f"DICOM loading as {IMAGE_SIZE}x{IMAGE_SIZE}, {result['n_files']} files, "
        f"median of {result['rounds']} rounds, on {result['machine']['cpus']} CPUs.",
        "",
        "| files | contender | files/s | vs pydicom loop |",
        "|---|---|---:|---:|",
    ]
    for case in result["cases"]:
        for name, row in case["contenders"].items():
            lines.append(
                f"| {case['name']} | {name} | {row['files_per_s']:.0f} | "
                f"{row['speedup_vs_pydicom_loop']:.2f}x |"
            )
    lines.append("")
    lines.append(
        "Largest pixel difference between ImageLoader and the loop: "
        + ", ".join(
            f"{case['name']} {case['largest_difference']:.2g}"
            for case in result["cases"]
        )
        + " (the same display chain; resampling differs slightly)."
    )
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n-files", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from pydicom.uid import RLELossless

    sources = source_images(args.data, args.n_files)
    cases = []
    with tempfile.TemporaryDirectory() as workdir:
        for side in [None, *args.sizes]:
            for syntax, syntax_name in ((None, "uncompressed"), (RLELossless, "RLE")):
                name = f"{side or 'own size'} px, {syntax_name}"
                folder = Path(workdir) / f"{side}_{syntax_name}"
                paths = make_files(sources, folder, side, syntax)
                print(f"timing {name} ...", file=sys.stderr, flush=True)
                seconds, difference = time_contenders(paths, args.rounds)
                cases.append(
                    {
                        "name": name,
                        "side": side,
                        "syntax": syntax_name,
                        "mean_file_bytes": float(
                            np.mean([os.path.getsize(path) for path in paths])
                        ),
                        "largest_difference": difference,
                        "contenders": summarize(seconds, len(paths)),
                    }
                )
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "n_files": len(sources),
        "rounds": args.rounds,
        "versions": {name: version(name) for name in ("pneumoclf", "pydicom")},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "cases": cases,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dicom.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "dicom.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
