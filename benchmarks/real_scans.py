"""The demo's models on real scans they never saw: Dice, TPR and PPV per scan.

Applies the fused ensemble of one or more `mslesseg demo` work folders (models
trained on synthetic scans only) to every real scan of ``shared/data`` whose
channels they take, exactly as a user would (`mslesseg predict` with the demo's
tuned.json, no test-time mirroring, CPU), and scores the masks against the
scans' references with the MSLesSeg protocol (`mslesseg evaluate`'s metrics).

Real scans (keep their attribution wherever they are used):
- MSLesSeg P18_T1, P39_T1 (FLAIR, T1; no T2): Guarnera, Rondinella et al., "MSLesSeg:
  baseline and benchmarking of a new Multiple Sclerosis Lesion Segmentation dataset",
  Scientific Data 2025, doi 10.6084/m9.figshare.27919209, CC-BY-4.0;
- 3D-MR-MS patient07 (FLAIR, T1, T1POST, T2, consensus): Lesjak, Pernus, Likar and
  Spiclin, Neuroinformatics 2017, doi 10.1007/s12021-017-9348-7, CC-BY.

    python benchmarks/real_scans.py --demo new=/tmp/demo_new --demo old=/tmp/demo_old \\
        --out /tmp/real_scans

A demo whose models need a channel a dataset lacks (the old demo's T2 on MSLesSeg)
gets "n/a" for those scans.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from mslesseg_nnunet.evaluation.batch import evaluate_pairs

#: (name, input folder below shared/data, channels it holds)
DATASETS = (("MSLesSeg", "mslesseg-real/train", {"FLAIR", "T1"}),
            ("3D-MR-MS", "3dmrms-real/cross_sectional/MNI", {"FLAIR", "T1", "T1POST", "T2"}))
METRICS = ("dice", "tpr", "ppv")


def demo_models(workdir: Path) -> tuple[list[Path], Path | None, set[str]]:
    """Model folders, tuned.json (None: not tuned, `mslesseg predict`'s defaults) and input
    channels of a `mslesseg demo` (or `mslesseg run`) folder."""
    models = sorted((workdir / "nnunet" / "nnUNet_results").glob("Dataset*/*__*__*"))
    tuned = workdir / "work" / "tune" / "tuned.json"
    if not models:
        raise SystemExit(f"{workdir}: no trained models under nnunet/nnUNet_results")
    dataset = json.loads((models[0] / "dataset.json").read_text())
    return models, tuned if tuned.is_file() else None, set(dataset["channel_names"].values())


def predict(models: list[Path], tuned: Path | None, src: Path, out: Path) -> float:
    """`mslesseg predict` of ``src`` with the demo's fused ensemble; seconds taken."""
    start = time.monotonic()
    params = ["--params", str(tuned)] if tuned else []
    subprocess.run(["mslesseg", "predict", "-i", str(src), "-o", str(out), "--models",
                    *map(str, models), *params, "--device", "cpu", "--disable-tta",
                    "--workers", "0"], check=True)
    return time.monotonic() - start


def score(src: Path, out: Path, dataset: str) -> dict:
    """``{scan: {metric: value}}``: each predicted mask against the reference at the same
    relative path of the input folder (`mslesseg predict` writes the input's own naming)."""
    cases = json.loads((out / "ensemble.json").read_text())["cases"]
    pairs = [(f"{dataset} {Path(rel).parent.as_posix()}", out / rel, src / rel)
             for rel in cases.values()]
    rows = evaluate_pairs(pairs, "mslesseg", progress=False)
    return {case: {k: row[k] for k in METRICS} for (case, _, _), row in zip(pairs, rows)}


def fmt(row: dict | None) -> str:
    return " | ".join(f"{row[k]:.3f}" for k in METRICS) if row else " | ".join(["n/a"] * 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="append", required=True, metavar="NAME=WORKDIR",
                        help="a finished `mslesseg demo --workdir WORKDIR`, named in the table")
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("MSLESSEG_SHARED", "../shared")) / "data")
    parser.add_argument("--out", type=Path, required=True, help="folder for the predictions")
    args = parser.parse_args()
    results, scans = {}, []
    for item in args.demo:
        name, _, workdir = item.partition("=")
        models, tuned, channels = demo_models(Path(workdir).resolve())
        results[name] = {}
        for dataset, folder, available in DATASETS:
            if not channels <= available:
                print(f"{name}: {dataset} skipped (models need {sorted(channels - available)})")
                continue
            out = args.out / name / dataset
            seconds = predict(models, tuned, args.data / folder, out)
            rows = score(args.data / folder, out, dataset)
            print(f"{name}: {dataset} predicted in {seconds:.0f} s")
            results[name].update(rows)
            scans += [s for s in rows if s not in scans]
    names = list(results)
    print("\n| scan | " + " | ".join(f"{n} Dice | {n} TPR | {n} PPV" for n in names) + " |")
    print("|---|" + "---|" * 3 * len(names))
    for scan in scans:
        print(f"| {scan} | " + " | ".join(fmt(results[n].get(scan)) for n in names) + " |")
    means = [fmt({k: float(np.nanmean([r[k] for r in results[n].values()])) for k in METRICS})
             if results[n] else fmt(None) for n in names]
    print("| mean over the scans each took (PPV: those with a prediction) | "
          + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
