"""Seconds per case of quantile normalisation next to nnU-Net's own preprocessing of the
same case, side by side in one run (issue 15 target: <= 10 %).

Usage::

    python benchmarks/quantile.py [--rounds 3] [--workdir DIR]

Cases: the real MSLesSeg P18_T1 and P39_T1 (FLAIR + T1, CC-BY-4.0, Guarnera et
al., Scientific Data 2025) and 3D-MR-MS patient07 (FLAIR + T1, CC-BY, Lesjak et
al., Neuroinformatics 2017), all 1 mm on the MNI grid, as one nnU-Net raw
dataset planned by stock nnU-Net (fingerprint + ExperimentPlanner, 3d_fullres).
Per case and round, in alternating order:

- nnU-Net: ``DefaultPreprocessor.run_case_save`` (what ``nnUNetv2_preprocess`` does per
  case: read, crop, z-score, resample, sample foreground, write blosc2);
- quantile, files: ``normalise_case_files`` on both channels (what ``mslesseg normalise``
  and ``mslesseg predict`` add per case: read, brain mask, map, write float32 NIfTI);
- quantile, in memory: ``normalise_channels`` on arrays already read.

Prints the median over rounds and the ratios as a Markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSLESSEG_SHARED", REPO.parent / "shared"))
MSL = SHARED / "data" / "mslesseg-real" / "train"
MRMS = SHARED / "data" / "3dmrms-real" / "cross_sectional" / "MNI" / "patient07"
DATASET = "Dataset990_QuantileBench"


def sources() -> dict[str, tuple[list[Path], Path]]:
    """Case id -> (FLAIR, T1) files and the lesion mask."""
    cases = {f"MSLesSeg_{p}_T1": ([MSL / p / "T1" / f"{p}_T1_{c}.nii.gz" for c in ("FLAIR", "T1")],
                                  MSL / p / "T1" / f"{p}_T1_MASK.nii.gz") for p in ("P18", "P39")}
    mrms = {c: next(MRMS.glob(f"{c}_N4*.nii.gz")) for c in ("FLAIR", "T1", "GOLD_STANDARD")}
    cases["MRMS3D_patient07"] = ([mrms["FLAIR"], mrms["T1"]], mrms["GOLD_STANDARD"])
    return cases


def write_raw(raw: Path) -> dict[str, list[Path]]:
    """The raw dataset (images linked, masks binarised); case id -> image files."""
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    images = {}
    for case, (channels, mask) in sources().items():
        images[case] = [raw / "imagesTr" / f"{case}_{i:04d}.nii.gz" for i in range(2)]
        for src, dst in zip(channels, images[case]):
            dst.symlink_to(src)
        img = nib.load(str(channels[0]))
        nib.save(nib.Nifti1Image((np.asanyarray(nib.load(str(mask)).dataobj) > 0).astype(np.uint8),
                                 img.affine, img.header), raw / "labelsTr" / f"{case}.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "FLAIR", "1": "T1"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": len(images), "file_ending": ".nii.gz"}))
    return images


def timed(func) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process and its threads) of ``func()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-quantile-"))
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[var] = str(work / var)
    images = write_raw(work / "nnUNet_raw" / DATASET)

    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints,
                                                                      plan_experiments)
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from mslesseg_nnunet.dataset_conversion.normalise import compute_references
    from mslesseg_nnunet.quantile_normalisation import normalise_case_files, normalise_channels

    with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net prints the whole plans
        extract_fingerprints([990], num_processes=1, check_dataset_integrity=False, clean=True,
                             verbose=False)
        plan_experiments([990])
    pre = work / "nnUNet_preprocessed" / DATASET
    plans = PlansManager(json.loads((pre / "nnUNetPlans.json").read_text()))
    config = plans.get_configuration("3d_fullres")
    dataset_json = json.loads((work / "nnUNet_raw" / DATASET / "dataset.json").read_text())
    references = compute_references(images, [0, 1], None, 1)
    out = work / "out"
    out.mkdir(exist_ok=True)
    preprocessor = DefaultPreprocessor(verbose=False)
    times = {case: {"nnunet": [], "files": [], "memory": []} for case in images}
    for r in range(args.rounds):
        for case, files in images.items():
            label = str(work / "nnUNet_raw" / DATASET / "labelsTr" / f"{case}.nii.gz")
            arrays = [np.asanyarray(nib.load(str(f)).dataobj) for f in files]
            steps = {
                "nnunet": lambda: preprocessor.run_case_save(
                    str(out / f"{case}-{r}"), list(map(str, files)), label, plans, config,
                    dataset_json),
                "files": lambda: normalise_case_files(files, [out / f.name for f in files],
                                                      references),
                "memory": lambda: normalise_channels(arrays, references)}
            for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
                times[case][name].append(timed(steps[name]))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d')}, median of {args.rounds} rounds; seconds wall / CPU")
    print("| case | nnU-Net preprocessing | quantile, files | ratio wall / CPU | "
          "quantile, in memory | ratio wall / CPU |")
    print("|---|---|---|---|---|---|")
    for case, t in times.items():
        nn, files, memory = ([statistics.median(x[i] for x in t[k]) for i in (0, 1)]
                             for k in ("nnunet", "files", "memory"))
        print(f"| {case} | {nn[0]:.2f} / {nn[1]:.2f} | {files[0]:.2f} / {files[1]:.2f} | "
              f"{files[0] / nn[0]:.1%} / {files[1] / nn[1]:.1%} | "
              f"{memory[0]:.2f} / {memory[1]:.2f} | "
              f"{memory[0] / nn[0]:.1%} / {memory[1] / nn[1]:.1%} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
