"""Real nnU-Net plans files for network tests, made by the stock fingerprint and planners.

``make_plans(root)`` writes a tiny nnU-Net raw dataset (two 32^3 cases with a
box label) under ``root`` and runs nnU-Net's fingerprint extraction and its
default and ResEnc-M experiment planners in ONE subprocess (nnU-Net reads its
folders from the environment when it is imported). It returns the plans
files by plans name.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DATASET_ID = 911
DATASET_NAME = f"Dataset{DATASET_ID}_NetworkPlans"
PLANNERS = {"nnUNetPlans": "ExperimentPlanner", "nnUNetResEncUNetMPlans": "nnUNetPlannerResEncM"}
SHAPE = (32, 32, 32)


def make_plans(root: Path) -> dict[str, Path]:
    """Plan a tiny dataset under ``root``; return {plans name: plans json path}."""
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(root / var)
    subprocess.run([sys.executable, __file__], env=env, check=True, capture_output=True,
                   timeout=300)
    folder = root / "nnUNet_preprocessed" / DATASET_NAME
    return {name: folder / f"{name}.json" for name in PLANNERS}


def _write_raw_dataset(raw: Path) -> None:
    import numpy as np
    import SimpleITK as sitk

    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for case in range(2):
        label = np.zeros(SHAPE, np.uint8)
        label[10:18, 12:20, 8 + case:16 + case] = 1
        image = (rng.normal(size=SHAPE) + 3 * label).astype(np.float32)
        for array, path in ((image, raw / "imagesTr" / f"case{case}_0000.nii.gz"),
                            (label, raw / "labelsTr" / f"case{case}.nii.gz")):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "FLAIR"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": 2, "file_ending": ".nii.gz"}))


def _plan() -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments

    _write_raw_dataset(Path(os.environ["nnUNet_raw"]) / DATASET_NAME)
    extract_fingerprints([DATASET_ID], num_processes=1, verbose=False, show_progress_bar=False)
    for planner in PLANNERS.values():
        plan_experiments([DATASET_ID], planner)


if __name__ == "__main__":
    _plan()
