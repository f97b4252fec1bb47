"""A tiny nnU-Net dataset, planned and preprocessed by stock nnU-Net, for integration tests.

``build_tiny_nnunet(root)`` writes small two-channel volumes (FLAIR-like
channel with bright blob lesions, T1-like channel) as nnU-Net raw datasets with
binary, multi-size (3 classes) and distance-based (2 classes) labels, runs the
stock fingerprint / planning (default and ResEnc-M planners) / preprocessing as
subprocesses and applies ``mslesseg cpu-plans``. Reuse it from other test files::

    from tiny_nnunet import build_tiny_nnunet, nnunet_subprocess_env
    tiny = build_tiny_nnunet(tmp_path_factory.mktemp("nnunet"))
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from mslesseg_nnunet.nnunet_env import nnunet_environment

SHAPE = (40, 48, 40)
NUM_CASES = 5
DATASET_IDS = {"binary": 901, "msl": 902, "dbl": 903}
LABELS = {
    "binary": {"background": 0, "lesion": 1},
    "msl": {"background": 0, "small": 1, "medium": 2, "large": 3},
    "dbl": {"background": 0, "boundary": 1, "interior": 2},
}
CPU_PLANS = {"nnUNetPlans": "nnUNetPlansCPU", "nnUNetResEncUNetMPlans": "nnUNetResEncUNetMPlansCPU"}
# Blob radii (voxels): small, medium and large lesions for the multi-size classes.
RADII = (1.6, 3.2, 6.5)


@dataclass
class TinyNnunet:
    """Where the tiny datasets live and the environment to run nnU-Net on them."""

    root: Path
    env: dict
    dataset_ids: dict = field(default_factory=lambda: dict(DATASET_IDS))

    def dataset_name(self, labelling: str) -> str:
        return f"Dataset{self.dataset_ids[labelling]:03d}_Tiny{labelling.capitalize()}"

    def raw_dir(self, labelling: str) -> Path:
        return Path(self.env["nnUNet_raw"]) / self.dataset_name(labelling)

    def results_dir(self, labelling: str) -> Path:
        return Path(self.env["nnUNet_results"]) / self.dataset_name(labelling)


def nnunet_subprocess_env(root: Path) -> dict:
    """os.environ plus the nnU-Net folders under ``root`` and settings that keep runs small and quiet."""
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_n_proc_DA"):
        env.pop(var, None)  # nnU-Net planning fails with nnUNet_n_proc_DA=0, see training_env
    env.update(nnunet_environment(root, environ=env))
    env.update({"nnUNet_def_n_proc": "1", "nnUNet_compile": "false",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    return env


def training_env(env: dict) -> dict:
    """``env`` with in-process data augmentation (nnU-Net planning needs this unset)."""
    return {**env, "nnUNet_n_proc_DA": "0"}


def run_tool(name: str, *args: str, env: dict, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run an installed console script (nnUNetv2_*, mslesseg) of this venv; raise with its output on failure."""
    exe = Path(sys.executable).with_name(name)
    proc = subprocess.run([str(exe), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def blob_case(rng: np.random.Generator, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A (2, *shape) float image and its binary lesion mask with one blob of each size."""
    grid = np.indices(shape).astype(np.float32)
    centre = (np.array(shape) - 1)[:, None, None, None] / 2
    head = (((grid - centre) / (np.array(shape)[:, None, None, None] * 0.45)) ** 2).sum(0) <= 1
    mask = np.zeros(shape, bool)
    for radius in RADII:
        c = rng.uniform(12, np.array(shape) - 12)[:, None, None, None]
        mask |= ((grid - c) ** 2).sum(0) <= radius ** 2
    mask &= head
    noise = rng.normal(0, 5, (2, *shape)).astype(np.float32)
    flair = head * 100.0 + mask * 80.0 + noise[0]
    t1 = head * 120.0 - mask * 40.0 + noise[1]
    return np.stack([flair, t1]), mask


def relabel(mask: np.ndarray, labelling: str) -> np.ndarray:
    """Binary mask -> binary, multi-size (bins 20 / 100 voxels here) or distance-based labels."""
    if labelling == "binary":
        return mask.astype(np.uint8)
    if labelling == "msl":
        comps, n = ndimage.label(mask)
        sizes = ndimage.sum(mask, comps, range(1, n + 1))
        classes = np.concatenate([[0], 1 + np.digitize(sizes, (20, 100))]).astype(np.uint8)
        return classes[comps]
    if labelling == "dbl":
        dist2 = ndimage.distance_transform_edt(mask) ** 2
        return (mask.astype(np.uint8) + (dist2 > 4.5)).astype(np.uint8)
    raise ValueError(labelling)


def write_raw_dataset(raw_dir: Path, labelling: str, seed: int = 0, shape=SHAPE) -> None:
    """Write imagesTr/labelsTr/dataset.json of one tiny dataset (1 mm isotropic, RAS affine)."""
    (raw_dir / "imagesTr").mkdir(parents=True)
    (raw_dir / "labelsTr").mkdir()
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    for i in range(NUM_CASES):
        image, mask = blob_case(rng, shape)
        case = f"tiny_{i:03d}"
        for c in range(image.shape[0]):
            nib.save(nib.Nifti1Image(image[c], affine), raw_dir / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        nib.save(nib.Nifti1Image(relabel(mask, labelling), affine), raw_dir / "labelsTr" / f"{case}.nii.gz")
    labels = LABELS[labelling]
    dataset = {"channel_names": {"0": "FLAIR", "1": "T1"}, "labels": labels,
               "numTraining": NUM_CASES, "file_ending": ".nii.gz",
               "lesion_labels": sorted(v for v in labels.values() if v),
               "labelling": {"kind": labelling}}
    (raw_dir / "dataset.json").write_text(json.dumps(dataset, indent=2))


def write_splits(preprocessed_dir: Path) -> None:
    """nnU-Net's own seeded 5-fold split, written up front so that concurrent trainings
    never race to create ``splits_final.json``."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    cases = [f"tiny_{i:03d}" for i in range(NUM_CASES)]
    splits = generate_crossval_split(cases, seed=12345, n_splits=5)
    (preprocessed_dir / "splits_final.json").write_text(json.dumps(splits, indent=2))


def write_tiny_datasets(root: Path, labellings=("binary", "msl", "dbl"), shape=SHAPE) -> TinyNnunet:
    """The nnU-Net folders under ``root`` and one raw dataset per labelling (not planned)."""
    root = Path(root)
    tiny = TinyNnunet(root, nnunet_subprocess_env(root))
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(tiny.env[var]).mkdir(parents=True, exist_ok=True)
    for lab in labellings:
        write_raw_dataset(tiny.raw_dir(lab), lab, seed=tiny.dataset_ids[lab], shape=shape)
    return tiny


def build_tiny_nnunet(root: Path, labellings=("binary", "msl", "dbl"), shape=SHAPE) -> TinyNnunet:
    """Raw datasets, stock planning (default + ResEnc-M) and preprocessing, 5-fold splits,
    and CPU plans (``nnUNetPlansCPU``, ``nnUNetResEncUNetMPlansCPU``)."""
    tiny = write_tiny_datasets(root, labellings, shape)
    env = tiny.env
    ids = [str(tiny.dataset_ids[lab]) for lab in labellings]
    run_tool("nnUNetv2_plan_and_preprocess", "-d", *ids, "-c", "3d_fullres", "-np", "1",
             "-npfp", "1", "--no_pbar", env=env)
    run_tool("nnUNetv2_plan_experiment", "-d", *ids, "-pl", "nnUNetPlannerResEncM", env=env)
    for lab in labellings:
        write_splits(Path(env["nnUNet_preprocessed"]) / tiny.dataset_name(lab))
    for dataset_id in ids:
        for source, cpu in CPU_PLANS.items():
            run_tool("mslesseg", "cpu-plans", "-d", dataset_id, "--source-plans", source,
                     "--plans-name", cpu, env=env)
    return tiny
