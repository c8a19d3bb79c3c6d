"""Scoring an archive: images per second and memory per worker, against plain predict.

Archives of 10^3, 10^4 and 10^5 files are made from the training images (hard
links, or copies where links cannot be made, under new names), and each is scored
in the same run by:

* plain ``pneumoclf predict MODEL FILES`` in one process (``--model``, the model
  file: what a user runs without this feature);
* :func:`pneumoclf.archive.score_archive` on a local Dask cluster of 1 and of 2
  single-threaded workers (``--scheduler local:N``), which read the files
  themselves and run the model's ONNX export (made once, beforehand, as
  ``pneumoclf export`` makes it).

Reported: wall time and images per second, including process and cluster start,
and the peak resident memory of each worker (of the process, for plain predict).

Run from the repository root::

    python benchmarks/archive.py --model /tmp/model.pneumoclf

Writes ``archive.json`` and ``archive.md``.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pneumoclf.archive import score_archive
from pneumoclf.datasets import find_images

# Dask starts its workers by importing this script anew: nothing here at module
# level may import TensorFlow (benchmarks/quality.py does), or every worker would.
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "chest_xray"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a model file")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results"
    )
    parser.add_argument("--name", default="archive")
    return parser.parse_args(argv)


def make_archive(sources, n_files, folder):
    """``n_files`` files under ``folder``, each a link to one of ``sources``."""
    folder.mkdir(parents=True)
    for index in range(n_files):
        source = sources[index % len(sources)]
        target = folder / f"{index // 1000:03d}" / f"scan{index:06d}{source.suffix}"
        target.parent.mkdir(exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def plain_predict(model, folder):
    """Wall time and peak memory of ``pneumoclf predict MODEL FOLDER``."""
    code = (
        "import sys; from pneumoclf.cli import main; "
        "sys.path.insert(0, sys.argv.pop(1)); from archive import peak_mib; "
        "status = main(sys.argv[1:]); print(peak_mib(), file=sys.stderr); "
        "sys.exit(status)"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), "predict",
         str(model), str(folder), "-o", os.devnull],
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 4):
        raise RuntimeError(result.stderr)
    return seconds, [float(result.stderr.strip().splitlines()[-1])]


def peak_mib():
    """This process's peak resident memory, in MiB.

    ``VmHWM`` of ``/proc/self/status``: unlike ``getrusage``'s ``ru_maxrss``, it
    does not count what the process's parent held when it was forked, before it
    ran Python anew.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")


def on_cluster(model, folder, n_workers, shard_size, output):
    """Wall time and each worker's peak memory of a local Dask cluster's run."""
    import distributed

    started = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        summary = score_archive(
            model, [folder], output, client=client, shard_size=shard_size
        )
        peaks = client.run(peak_mib)
    seconds = time.perf_counter() - started
    return seconds, list(peaks.values()), summary


def markdown(result):
    lines = [
        "# Scoring an archive",
        "",
        f"Command: `{result['command']}`. Machine: {result['machine']['cpu']}, "
        f"{result['machine'].get('cores', '?')} cores. Files: links to the "
        f"{result['n_sources']:,} images of `{result['data_dir']}`. Times include "
        "process and cluster start. The cluster's workers run the model's ONNX "
        f"export, made once beforehand in {result['export_seconds']:.1f} s "
        "(`pneumoclf export`).",
        "",
        "| files | how | seconds | images/s | vs plain predict "
        "| peak MiB per process |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['n_files']:,} | {row['how']} | {row['seconds']:.1f} | "
            f"{row['images_per_second']:,.0f} | {row['speedup']:.2f}x | "
            f"{', '.join(f'{peak:,.0f}' for peak in row['peak_mib'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    from quality import machine, write_results

    from pneumoclf.export import export_onnx
    from pneumoclf.persistence import load_model

    args = parse_args(argv)
    sources = [Path(path) for path in find_images(args.data_dir)]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.out.parent) as work:
        work = Path(work)
        onnx_model = work / "model.onnx"
        started = time.perf_counter()
        export_onnx(load_model(args.model), onnx_model)
        export_seconds = time.perf_counter() - started
        for n_files in args.sizes:
            folder = work / f"archive_{n_files}"
            make_archive(sources, n_files, folder)
            seconds, peaks = plain_predict(args.model, folder)
            baseline = n_files / seconds
            rows.append(
                {"n_files": n_files, "how": "pneumoclf predict, one process",
                 "seconds": seconds, "images_per_second": baseline, "speedup": 1.0,
                 "peak_mib": peaks}
            )  # fmt: skip
            for n_workers in args.workers:
                output = work / f"scores_{n_files}_{n_workers}.parquet"
                seconds, peaks, summary = on_cluster(
                    onnx_model, folder, n_workers, args.shard_size, output,
                )  # fmt: skip
                assert summary.n_files == n_files
                rows.append(
                    {"n_files": n_files, "how": f"Dask, {n_workers} worker(s)",
                     "seconds": seconds, "images_per_second": n_files / seconds,
                     "speedup": n_files / seconds / baseline, "peak_mib": peaks}
                )  # fmt: skip
                print(rows[-1], flush=True)
            shutil.rmtree(folder)
    result = {
        "command": "python benchmarks/archive.py " + " ".join(sys.argv[1:]),
        "machine": {**machine(), "cores": os.cpu_count()},
        "data_dir": str(args.data_dir),
        "n_sources": len(sources),
        "export_seconds": export_seconds,
        "rows": rows,
    }
    write_results(args.out, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
