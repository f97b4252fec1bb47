"""Benchmark `mslesseg ensemble` against stock `nnUNetv2_ensemble` on the same binary inputs.

Writes MSLesSeg-sized (182 x 218 x 182) synthetic nnU-Net outputs (``.npz``
softmax probabilities of a smooth random field inside a brain-like ellipsoid,
``.pkl`` properties, ``.nii.gz`` segmentation) for MODELS x FOLDS members, then
times both tools on them, one after the other, and reports seconds per case
per member, their ratio, and the peak resident memory of each tool.

    python benchmarks/ensemble.py --cases 2 --models 4 --folds 5 --workdir /tmp/ens_bench
"""
from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

SHAPE = (182, 218, 182)  # x, y, z as nibabel reads MSLesSeg scans
AFFINE = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
RSS_WRAPPER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def lesion_probability(rng: np.random.Generator, brain: np.ndarray) -> np.ndarray:
    """Smooth random lesion probability (x, y, z) with softmax-like values inside ``brain``."""
    coarse = ndimage.gaussian_filter(rng.standard_normal([s // 2 + 1 for s in SHAPE]), 2)
    logits = ndimage.zoom(coarse.astype(np.float32), 2, order=1)[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    p = 1.0 / (1.0 + np.exp(-(logits * 40.0 - 6.0)))
    return np.where(brain, p, 0.0).astype(np.float32)


DATASET = {"channel_names": {"0": "FLAIR"}, "labels": {"background": 0, "lesion": 1},
           "numTraining": 1, "file_ending": ".nii.gz", "lesion_labels": [1],
           "labelling": {"kind": "binary"}}
PLANS = {"dataset_name": "Dataset999_Bench", "plans_name": "nnUNetPlans",
         "image_reader_writer": "SimpleITKIO", "configurations": {},
         "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
         "original_median_spacing_after_transp": [1, 1, 1],
         "original_median_shape_after_transp": [1, 1, 1],
         "foreground_intensity_properties_per_channel": {}, "experiment_planner_used": "x"}


def brain_mask() -> np.ndarray:
    x, y, z = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    return ((x - 91) / 75) ** 2 + ((y - 109) / 95) ** 2 + ((z - 91) / 80) ** 2 < 1


def properties() -> dict:
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ AFFINE
    return {"sitk_stuff": {"spacing": (1.0, 1.0, 1.0), "origin": tuple(lps[:3, 3]),
                           "direction": tuple(lps[:3, :3].ravel())},
            "spacing": [1.0, 1.0, 1.0], "shape_before_cropping": SHAPE[::-1],
            "bbox_used_for_cropping": [[0, s] for s in SHAPE[::-1]]}


def write_members(root: Path, n_models: int, n_folds: int, n_cases: int,
                  seed: int = 0) -> list[Path]:
    """nnU-Net prediction folders with ``--save_probabilities`` outputs (binary labels).

    Each model gets its own probability map per case; its folds are byte copies
    (separate files, same decompression work) to keep the set-up short.
    """
    rng = np.random.default_rng(seed)
    brain = brain_mask()
    folders = [root / f"model{m}_fold{f}" for m in range(n_models) for f in range(n_folds)]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "dataset.json").write_text(json.dumps(DATASET))
        (folder / "plans.json").write_text(json.dumps(PLANS))
    for m in range(n_models):
        first = folders[m * n_folds]
        for c in range(n_cases):
            p = lesion_probability(rng, brain)
            np.savez_compressed(first / f"case_{c:03d}.npz",
                                probabilities=np.stack([1 - p, p]).transpose(0, 3, 2, 1))
            with open(first / f"case_{c:03d}.pkl", "wb") as handle:
                pickle.dump(properties(), handle)
            nib.save(nib.Nifti1Image((p > 0.5).astype(np.uint8), AFFINE), first / f"case_{c:03d}.nii.gz")
        for folder in folders[m * n_folds + 1:(m + 1) * n_folds]:
            for path in first.glob("case_*"):
                shutil.copyfile(path, folder / path.name)
        print(f"wrote model {m + 1}/{n_models}", file=sys.stderr)
    return folders


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB, largest process of the tree) of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *cmd], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return elapsed, int(proc.stdout.strip().splitlines()[-1]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--np", type=int, default=2, help="nnUNetv2_ensemble -np")
    parser.add_argument("--threads", type=int, default=2, help="mslesseg ensemble --threads")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="reuse/keep inputs here (default: a temporary folder)")
    args = parser.parse_args()
    n_members = args.models * args.folds
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ens_bench_"))
    inputs = workdir / f"inputs_{n_members}x{args.cases}"
    if not inputs.is_dir():
        shutil.rmtree(inputs.with_suffix(".tmp"), ignore_errors=True)
        write_members(inputs.with_suffix(".tmp"), args.models, args.folds, args.cases)
        inputs.with_suffix(".tmp").rename(inputs)
    folders = [str(p) for p in sorted(inputs.iterdir())]
    bindir = Path(sys.executable).parent
    for out in ("stock", "ours"):
        shutil.rmtree(workdir / out, ignore_errors=True)
    stock_s, stock_mb = timed([str(bindir / "nnUNetv2_ensemble"), "-i", *folders,
                               "-o", str(workdir / "stock"), "-np", str(args.np)])
    ours_s, ours_mb = timed([str(bindir / "mslesseg"), "ensemble", "-i", *folders,
                             "-o", str(workdir / "ours"), "--threads", str(args.threads)])
    per = lambda s: s / (args.cases * n_members)  # noqa: E731
    print(json.dumps({"cases": args.cases, "members": n_members, "shape": SHAPE,
                      "stock_s": round(stock_s, 2), "ours_s": round(ours_s, 2),
                      "stock_s_per_case_member": round(per(stock_s), 4),
                      "ours_s_per_case_member": round(per(ours_s), 4),
                      "ratio": round(ours_s / stock_s, 3),
                      "stock_peak_mib": stock_mb, "ours_peak_mib": ours_mb}, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
