"""The prediction-only installation: its size, and how fast it answers for one image.

Builds a fresh virtual environment with ``pip install distributions/pneumoclf-onnx``
(as the deployment guide says), then times ``pneumoclf predict MODEL.onnx IMAGE``
in fresh processes, against what a user of the full installation runs: the same
command there, and ``pneumoclf predict MODEL.pneumoclf IMAGE``. Each command runs
``--repeats`` times in rotating order; the median wall time is reported, process
start and imports included.

Run from the repository root, with the full installation's Python::

    python benchmarks/light_install.py --model /tmp/model.pneumoclf

Writes ``light_install.json`` and ``light_install.md``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LIGHT = REPO_ROOT / "distributions" / "pneumoclf-onnx"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "chest_xray"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a model file")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )
    return parser.parse_args(argv)


def fresh_environment(folder):
    """A new virtual environment with the prediction-only distribution."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "pip"), "install", "--quiet", str(LIGHT)]
    subprocess.run(pip, check=True)
    return folder


def size_mib(folder):
    files = [path for path in folder.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files if not path.is_symlink()) / 2**20


def has_module(env, module):
    code = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
    run = subprocess.run([str(env / "bin" / "python"), "-c", code],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return run.stdout.strip() == "True"


def timed(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    image = str(next((args.data_dir / "train" / "NORMAL").glob("*.jpeg")))
    full = Path(sys.executable).parent / "pneumoclf"
    with tempfile.TemporaryDirectory() as folder:
        onnx = Path(folder, "model.onnx")
        subprocess.run([str(full), "export", str(args.model), "-o", str(onnx)],
                       check=True, capture_output=True)  # fmt: skip
        env = fresh_environment(Path(folder, "venv"))
        light = env / "bin" / "pneumoclf"
        commands = {
            "prediction-only install, MODEL.onnx": [str(light), "predict", str(onnx)],
            "full install, MODEL.onnx": [str(full), "predict", str(onnx)],
            "full install, MODEL.pneumoclf": [str(full), "predict", str(args.model)],
        }
        times = {name: [] for name in commands}
        for repeat in range(args.repeats):
            names = list(commands)
            for name in names[repeat % 3 :] + names[: repeat % 3]:
                times[name].append(timed([*commands[name], image]))
        result = {
            "machine": f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores",
            "command": "python benchmarks/light_install.py "
            + " ".join(argv or sys.argv[1:]),
            "size_mib": round(size_mib(env), 1),
            "tensorflow": has_module(env, "tensorflow"),
            "sklearn": has_module(env, "sklearn"),
            "seconds": {
                name: statistics.median(values) for name, values in times.items()
            },
            "all_seconds": times,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "light_install.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "light_install.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result):
    base = result["seconds"]["full install, MODEL.pneumoclf"]
    lines = [
        "# Prediction-only installation",
        "",
        f"Machine: {result['machine']}. Command: `{result['command']}`",
        "",
        f"Fresh environment from `pip install distributions/pneumoclf-onnx`: "
        f"**{result['size_mib']:.0f} MiB**; TensorFlow importable: "
        f"{result['tensorflow']}; scikit-learn importable: {result['sklearn']}.",
        "",
        "`pneumoclf predict MODEL IMAGE` on one image in a fresh process (median of "
        f"{len(next(iter(result['all_seconds'].values())))} runs, rotating order):",
        "",
        "| installation, model | seconds | speed vs full install, MODEL.pneumoclf |",
        "|---|---|---|",
    ]
    for name, seconds in result["seconds"].items():
        lines.append(f"| {name} | {seconds:.2f} | {base / seconds:.1f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
