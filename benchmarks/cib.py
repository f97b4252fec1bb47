"""Calibrated Inter-patch Blending on synthetic MSSEG-2: time and the five blendings.

Synthesises an MSSEG-2 tree (two FLAIR time points, new lesions, some patients
without), holds out ``--heldout`` training patients (with their ground truth)
as the test set, converts and plans the rest with stock nnU-Net, shrinks the
plans for CPU, trains ``nnUNetTrainerCIBShort`` on fold ``all`` with stock
``nnUNetv2_train``, then

1. times stock ``nnUNetv2_predict`` and ``mslesseg predict --blending cib-grid``
   (and ``--blending gaussian``) on the same model and cases, in alternating
   turns, and prints seconds per case and the ratio to stock;
2. predicts with every blending (gaussian, average, cib-patch, cib-grid,
   oracle-patch, oracle) and scores each with ``mslesseg evaluate --protocol
   msseg2`` (Anima rules): mean Dice and lesion F1 over patients with new
   lesions, mean number of false-positive lesions over patients without.

    python benchmarks/cib.py --workdir /tmp/cib_bench
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mslesseg_nnunet.nnunet_env import nnunet_environment

BIN = Path(sys.executable).parent
DATASET_ID = 951
TRAINER = "nnUNetTrainerCIBShort"
PLANS = "nnUNetPlansCPU"
BLENDINGS = ("gaussian", "average", "cib-patch", "cib-grid", "oracle-patch", "oracle")


def run(*args, env: dict) -> float:
    """Run a console script of this venv; return its wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def prepare(work: Path, args, env: dict) -> tuple[Path, Path, Path, Path]:
    """Synthetic tree, held-out test folder, trained model; returns (model, test, test_nnunet, gt)."""
    tree, test = work / "msseg2", work / "heldout"
    run("mslesseg", "synth", "msseg2", tree, "--patients", args.patients + args.heldout,
        "--test-patients", 1, "--spacing", args.spacing, "--seed", args.seed, "--workers", 1, env=env)
    patients = sorted(p for p in (tree / "training").iterdir() if p.is_dir())
    test.mkdir()
    for patient in patients[-args.heldout:]:
        shutil.move(str(patient), test / patient.name)
    run("mslesseg", "convert", "msseg2", tree, "--dataset-id", DATASET_ID, "--name", "CIBBench",
        "--workers", 1, env=env)
    run("nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", "3d_fullres", "-np", 1, "-npfp", 1,
        "--no_pbar", env=env)
    run("mslesseg", "cpu-plans", "-d", DATASET_ID, "--patch-size", *args.patch, env=env)
    train_env = {**env, "MSLESSEG_SHORT_EPOCHS": str(args.epochs), "MSLESSEG_SHORT_ITERS": str(args.iters),
                 "nnUNet_n_proc_DA": "0"}
    seconds = run("nnUNetv2_train", DATASET_ID, "3d_fullres", "all", "-tr", TRAINER, "-p", PLANS,
                  "-device", "cpu", env=train_env)
    print(f"trained {TRAINER}: {args.epochs} x {args.iters} iterations in {seconds:.0f} s")
    model = next(Path(env["nnUNet_results"]).glob(f"Dataset{DATASET_ID}_*")) / f"{TRAINER}__{PLANS}__3d_fullres"
    test_nnunet, gt = work / "heldout_nnunet", work / "heldout_gt"
    test_nnunet.mkdir()
    gt.mkdir()
    for patient in sorted(test.iterdir()):
        for channel in (1, 2):
            (test_nnunet / f"{patient.name}_{channel - 1:04d}.nii.gz").symlink_to(
                patient / f"flair_time0{channel}_on_middle_space.nii.gz")
        (gt / patient.name).mkdir()
        (gt / patient.name / "ground_truth.nii.gz").symlink_to(patient / "ground_truth.nii.gz")
    return model, test, test_nnunet, gt


def timing(model: Path, test: Path, test_nnunet: Path, work: Path, rounds: int, env: dict) -> None:
    n_cases = len(list(test.iterdir()))
    stock_args = ("nnUNetv2_predict", "-i", test_nnunet, "-d", DATASET_ID, "-c", "3d_fullres", "-tr",
                  TRAINER, "-p", PLANS, "-f", "all", "-device", "cpu", "-npp", 1, "-nps", 1)
    times = {"stock nnUNetv2_predict": [], "mslesseg predict --blending gaussian": [],
             "mslesseg predict --blending cib-grid": []}
    for _ in range(rounds):
        for name in times:
            out = work / "timing"
            shutil.rmtree(out, ignore_errors=True)
            if name.startswith("stock"):
                times[name].append(run(*stock_args, "-o", out, env=env))
            else:
                times[name].append(run("mslesseg", "predict", "-i", test, "-o", out, "--models", model,
                                       "--folds", "all", "--device", "cpu", "--workers", 1,
                                       "--blending", name.rsplit(" ", 1)[1], env=env))
    stock = np.median(times["stock nnUNetv2_predict"])
    print(f"\ntime per case (median of {rounds} alternating rounds, {n_cases} cases, whole command):")
    for name, values in times.items():
        print(f"  {name:40s} {np.median(values) / n_cases:7.2f} s/case   x{np.median(values) / stock:.2f}")


def quality(model: Path, test: Path, gt: Path, work: Path, env: dict) -> None:
    print("\nblending        Dice   F1     FP lesions (lesion-free)   [patients with / without new lesions]")
    for blending in BLENDINGS:
        out, table = work / f"pred_{blending}", work / f"eval_{blending}.csv"
        extra = ("--oracle-gt", gt) if blending.startswith("oracle") else ()
        run("mslesseg", "predict", "-i", test, "-o", out, "--models", model, "--folds", "all",
            "--device", "cpu", "--workers", 1, "--blending", blending, "--overwrite", *extra, env=env)
        run("mslesseg", "evaluate", out, gt, "--protocol", "msseg2", "-o", table, "--overwrite", env=env)
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
        with_lesions = [r for r in rows if r["n_ref_lesions"] not in ("0", "")]
        without = [r for r in rows if r["n_ref_lesions"] == "0"]
        dice = np.mean([float(r["dice"]) for r in with_lesions]) if with_lesions else float("nan")
        f1 = np.mean([float(r["f1"]) for r in with_lesions]) if with_lesions else float("nan")
        fp = np.mean([float(r["fp_lesions"]) for r in without]) if without else float("nan")
        print(f"{blending:14s} {dice:6.3f} {f1:6.3f} {fp:8.2f}                    [{len(with_lesions)} / {len(without)}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=12, help="training patients")
    parser.add_argument("--heldout", type=int, default=4, help="held-out test patients")
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--patch", type=int, nargs=3, default=(32, 32, 32))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("nnUNet_")}
    env.update({"nnUNet_compile": "false", "nnUNet_def_n_proc": "1", "PYTHONWARNINGS": "ignore",
                **nnunet_environment(work / "nnunet", environ=env)})
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(env[var]).mkdir(parents=True)
    model, test, test_nnunet, gt = prepare(work, args, env)
    timing(model, test, test_nnunet, work, args.rounds, env)
    quality(model, test, gt, work, env)


if __name__ == "__main__":
    main()
