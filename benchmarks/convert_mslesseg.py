"""Seconds per scan of ``mslesseg convert mslesseg`` on a synthetic full-size MSLesSeg tree.

Usage::

    python benchmarks/convert_mslesseg.py [--patients 4] [--workers 1 2] [--workdir DIR]

Generates (untimed) a 1 mm synthetic tree with ``mslesseg synth mslesseg``,
then times the conversion (FLAIR, T1, T2 + mask per scan) for each worker
count, into a fresh nnU-Net raw folder each time, and prints a Markdown row
per run for ``docs/benchmarks.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def synth_tree(out: Path, patients: int) -> Path:
    """Write a full-size synthetic MSLesSeg tree (if not there yet) and return it."""
    if not out.is_dir():
        subprocess.run([sys.executable, "-m", "mslesseg_nnunet.cli", "synth", "mslesseg",
                        str(out), "--patients", str(patients), "--test-patients", "1",
                        "--spacing", "1"], check=True)
    return out


def time_conversion(src: Path, workdir: Path, workers: int) -> tuple[float, int]:
    """Wall seconds of one conversion and the number of scans converted."""
    from mslesseg_nnunet.dataset_conversion import convert_mslesseg

    root = Path(tempfile.mkdtemp(prefix=f"w{workers}-", dir=workdir))
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[var] = str(root / var)
    start = time.perf_counter()
    folder = convert_mslesseg(src, 900, workers=workers)
    seconds = time.perf_counter() - start
    n_scans = len(list((folder / "imagesTr").glob("*_0000.nii.gz")))
    n_scans += len(list((folder / "imagesTs").glob("*_0000.nii.gz")))
    return seconds, n_scans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=4, help="training patients (default 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the tree and outputs (default: a temporary folder)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-convert-"))
    workdir.mkdir(parents=True, exist_ok=True)
    src = synth_tree(workdir / "synth", args.patients)
    print(f"| machine | workers | scans | seconds | seconds/scan |")
    print("|---|---|---|---|---|")
    for workers in args.workers:
        seconds, n = time_conversion(src, workdir, workers)
        print(f"| {platform.machine()}, {os.cpu_count()} cores | {workers} | {n} | "
              f"{seconds:.2f} | {seconds / n:.3f} |")


if __name__ == "__main__":
    main()
