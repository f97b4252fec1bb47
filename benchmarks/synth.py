"""Time `mslesseg synth mslesseg` (and optionally `msseg2`) end to end.

Runs the installed command in a subprocess and reports wall time and the CPU
time of the whole process tree (user + system of the command and its
workers); on a loaded machine the CPU time is the figure to compare, since
wall time then depends on the other processes.

    python benchmarks/synth.py [--patients 10] [--spacing 1] [--workers 2] [--msseg2]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(kind: str, patients: int, spacing: float, workers: int) -> dict:
    """Generate one dataset in a temporary folder; return timings and scan count."""
    exe = shutil.which("mslesseg") or str(Path(sys.executable).parent / "mslesseg")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([exe, "synth", kind, str(out), "--patients", str(patients),
                               "--spacing", str(spacing), "--workers", str(workers)],
                              capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    scans = int(proc.stdout.split()[1])
    return {"kind": kind, "patients": patients, "scans": scans, "wall_s": wall, "cpu_s": cpu,
            "mb": size / 1e6, "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--spacing", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--msseg2", action="store_true", help="also time the MSSEG-2 tree")
    args = parser.parse_args()
    kinds = ["mslesseg"] + (["msseg2"] if args.msseg2 else [])
    print("| kind | patients | scans/patients written | spacing | workers | wall s | CPU s | MB | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        r = run(kind, args.patients, args.spacing, args.workers)
        print(f"| {kind} | {r['patients']} | {r['scans']} | {args.spacing:g} | {args.workers} "
              f"| {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['mb']:.0f} | {r['load']:.1f} |")


if __name__ == "__main__":
    main()
