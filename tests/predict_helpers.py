"""Untrained nnU-Net model folders (random weights) for prediction plumbing tests."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from tiny_nnunet import TinyNnunet, run_tool, write_tiny_datasets

TRAINER = "nnUNetTrainer"
PLANS = "nnUNetPlansCPU"

_SAVE_CHECKPOINTS = """
import json, sys, torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
torch.manual_seed(0)
for model in sys.argv[1:]:
    plans = {**json.load(open(f"{model}/plans.json")), "continue_training": False}
    dataset = json.load(open(f"{model}/dataset.json"))
    trainer = nnUNetTrainer(plans, "3d_fullres", 0, dataset, device=torch.device("cpu"))
    trainer.initialize()
    trainer.save_checkpoint(f"{model}/fold_0/checkpoint_final.pth")
"""


def plan_tiny_datasets(root: Path) -> TinyNnunet:
    """Raw binary/MSL/DBL tiny datasets; stock planning and preprocessing of the binary one."""
    tiny = write_tiny_datasets(root)
    run_tool("nnUNetv2_plan_and_preprocess", "-d", str(tiny.dataset_ids["binary"]), "-c",
             "3d_fullres", "-np", "1", "-npfp", "1", "--no_pbar", env=tiny.env)
    return tiny


def shrunk_plans(tiny: TinyNnunet, labelling: str = "binary") -> dict:
    """The stock plans of one tiny dataset, shrunk for CPU by ``mslesseg_nnunet.cpu_plans``."""
    from mslesseg_nnunet.cpu_plans import make_cpu_plans

    path = Path(tiny.env["nnUNet_preprocessed"]) / tiny.dataset_name(labelling) / "nnUNetPlans.json"
    return make_cpu_plans(json.loads(path.read_text()), "3d_fullres", PLANS)


def make_models(tiny: TinyNnunet, labellings=("binary", "msl", "dbl")) -> dict[str, Path]:
    """``$nnUNet_results/DatasetX/nnUNetTrainer__nnUNetPlansCPU__3d_fullres`` per labelling,
    each with a stock trainer's randomly initialised ``fold_0/checkpoint_final.pth`` and the
    dataset.json / plans.json nnU-Net keeps in model folders.

    Plans do not depend on labels, so one planned and preprocessed dataset (the binary one,
    whose preprocessed folder ``initialize()`` looks at) serves every labelling.
    """
    plans = shrunk_plans(tiny)
    models = {}
    for labelling in labellings:
        model = tiny.results_dir(labelling) / f"{TRAINER}__{PLANS}__3d_fullres"
        (model / "fold_0").mkdir(parents=True, exist_ok=True)
        (model / "plans.json").write_text(json.dumps(plans, indent=2))
        shutil.copy(tiny.raw_dir(labelling) / "dataset.json", model / "dataset.json")
        models[labelling] = model
    subprocess.run([sys.executable, "-c", _SAVE_CHECKPOINTS, *map(str, models.values())],
                   env=tiny.env, check=True, capture_output=True, timeout=600)
    return models


def flair_only_model(tiny: TinyNnunet, like: Path) -> Path:
    """A FLAIR-only twin of the model folder ``like`` (one input channel, random weights) in
    ``$nnUNet_results/Dataset904_TinyFlair``."""
    model = Path(tiny.env["nnUNet_results"]) / "Dataset904_TinyFlair" / like.name
    (model / "fold_0").mkdir(parents=True)
    shutil.copy(like / "plans.json", model / "plans.json")
    dataset = {**json.loads((like / "dataset.json").read_text()), "channel_names": {"0": "FLAIR"}}
    (model / "dataset.json").write_text(json.dumps(dataset, indent=2))
    subprocess.run([sys.executable, "-c", _SAVE_CHECKPOINTS, str(model)], env=tiny.env, check=True,
                   capture_output=True, timeout=600)
    return model


def mslesseg_test_folder(tiny: TinyNnunet, root: Path, n_cases: int = 2) -> Path:
    """An MSLesSeg-style test folder ``P{n}/P{n}_{FLAIR,T1}.nii.gz`` from the tiny images,
    with an LAS affine and qform/sform code 4 like the real scans."""
    raw = tiny.raw_dir("binary") / "imagesTr"
    affine = np.array([[-1.0, 0, 0, 20], [0, 1.0, 0, -24], [0, 0, 1.0, -20], [0, 0, 0, 1]])
    for i in range(n_cases):
        patient = root / f"P{54 + i}"
        patient.mkdir(parents=True)
        for channel, modality in enumerate(("FLAIR", "T1")):
            data = np.asanyarray(nib.load(raw / f"tiny_{i:03d}_{channel:04d}.nii.gz").dataobj)
            img = nib.Nifti1Image(data.astype(np.float32), None)
            img.header.set_qform(affine, 4)
            img.header.set_sform(affine, 4)
            nib.save(img, patient / f"P{54 + i}_{modality}.nii.gz")
    return root
