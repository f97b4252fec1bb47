"""`mslesseg predict --blending` end to end on a CIB model (random weights) and a stock one."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from predict_helpers import PLANS, make_models, plan_tiny_datasets, shrunk_plans
from tiny_nnunet import run_tool

from mslesseg_nnunet.ensembles.members import to_nibabel_order

pytestmark = pytest.mark.slow

CIB_TRAINER = "nnUNetTrainerCIBShort"
CASES = ("tiny_000", "tiny_001")

_SAVE_CIB_CHECKPOINT = """
import json, sys, torch
from mslesseg_nnunet.trainer_catalog import trainer_classes
torch.manual_seed(0)
model = sys.argv[1]
plans = {**json.load(open(f"{model}/plans.json")), "continue_training": False}
trainer = trainer_classes()[sys.argv[2]](plans, "3d_fullres", 0, json.load(open(f"{model}/dataset.json")),
                                         device=torch.device("cpu"))
trainer.initialize()
trainer.save_checkpoint(f"{model}/fold_0/checkpoint_final.pth")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cib_predict")
    tiny = plan_tiny_datasets(root / "nnunet")
    plain = make_models(tiny, ("binary",))["binary"]
    cib = tiny.results_dir("binary") / f"{CIB_TRAINER}__{PLANS}__3d_fullres"
    (cib / "fold_0").mkdir(parents=True)
    (cib / "plans.json").write_text(json.dumps(shrunk_plans(tiny), indent=2))
    shutil.copy(tiny.raw_dir("binary") / "dataset.json", cib / "dataset.json")
    subprocess.run([sys.executable, "-c", _SAVE_CIB_CHECKPOINT, str(cib), CIB_TRAINER], env=tiny.env,
                   check=True, capture_output=True, timeout=600)
    inputs, gt = root / "imagesTs", root / "labelsTs"
    inputs.mkdir()
    gt.mkdir()
    for case in CASES:
        for path in (tiny.raw_dir("binary") / "imagesTr").glob(f"{case}_*.nii.gz"):
            (inputs / path.name).symlink_to(path)
        (gt / f"{case}.nii.gz").symlink_to(tiny.raw_dir("binary") / "labelsTr" / f"{case}.nii.gz")
    return tiny, plain, cib, inputs, gt


def predict(tiny, run_cli, *args, check=True):
    return run_cli("predict", "--device", "cpu", "--workers", "0", "--save-probabilities",
                   *map(str, args), env=tiny.env, check=check)


def probability(out, case):
    return np.load(out / "probabilities" / f"{case}.npz")["probability"]


def test_checkpoint_holds_heads_and_gaussian_is_stock_nnunetv2_predict(setup, tmp_path, run_cli):
    """The stock predictor runs the CIB model; ``--blending gaussian`` gives its exact probabilities."""
    tiny, _, cib, inputs, _ = setup
    weights = torch.load(cib / "fold_0" / "checkpoint_final.pth", weights_only=False)["network_weights"]
    assert any(k.startswith("cib_heads.") for k in weights)
    stock = tmp_path / "stock"
    run_tool("nnUNetv2_predict", "-i", inputs, "-o", stock, "-d", "901", "-c", "3d_fullres",
             "-tr", CIB_TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu", "--save_probabilities",
             "-npp", "1", "-nps", "1", env=tiny.env)
    out = tmp_path / "ours"
    predict(tiny, run_cli, "-i", inputs, "-o", out, "--models", cib, "--blending", "gaussian")
    for case in CASES:
        with open(stock / f"{case}.pkl", "rb") as handle:
            properties = pickle.load(handle)
        theirs = to_nibabel_order(np.load(stock / f"{case}.npz")["probabilities"][1], properties)
        assert np.array_equal(probability(out, case), theirs.astype(np.float32))


def test_default_blendings_of_a_mixed_ensemble_and_oracle(setup, tmp_path, run_cli):
    """CIB members blend with cib-grid, stock ones with gaussian, unless told; the oracle runs on any model."""
    tiny, plain, cib, inputs, gt = setup
    mixed = tmp_path / "mixed"
    predict(tiny, run_cli, "-i", inputs, "-o", mixed, "--models", cib, plain)
    members = json.loads((mixed / "ensemble.json").read_text())["members"]
    assert [m["blending"] for m in members] == ["cib-grid", "gaussian"]
    gaussian = tmp_path / "gaussian"
    predict(tiny, run_cli, "-i", inputs, "-o", gaussian, "--models", cib, plain, "--blending", "gaussian")
    assert not np.allclose(probability(mixed, CASES[0]), probability(gaussian, CASES[0]), atol=1e-3)
    oracle = tmp_path / "oracle"
    predict(tiny, run_cli, "-i", inputs, "-o", oracle, "--models", plain, "--blending", "oracle",
            "--oracle-gt", gt)
    assert json.loads((oracle / "ensemble.json").read_text())["members"][0]["blending"] == "oracle"
    for case in CASES:  # random weights: the oracle keeps only windows / cells that match the truth
        label = np.asarray(nib.load(gt / f"{case}.nii.gz").dataobj) > 0
        mask = np.asarray(nib.load(oracle / f"{case}.nii.gz").dataobj) > 0
        assert mask.sum() <= np.asarray(nib.load(gaussian / f"{case}.nii.gz").dataobj).sum()
        assert probability(oracle, case).shape == label.shape


@pytest.mark.parametrize("problem", ["no_heads", "no_gt", "gt_missing_case"])
def test_refusals_write_nothing(setup, tmp_path, run_cli, problem):
    tiny, plain, cib, inputs, gt = setup
    args, match = {
        "no_heads": (["--models", cib, plain, "--blending", "cib-grid"],
                     f"{plain}: --blending cib-grid needs a model trained with CIB heads"),
        "no_gt": (["--models", cib, "--blending", "oracle"], "--oracle-gt DIR"),
        "gt_missing_case": (["--models", cib, "--blending", "oracle", "--oracle-gt", tmp_path / "gt"],
                            "no ground truth for case tiny_001"),
    }[problem]
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "tiny_000.nii.gz").symlink_to(gt / "tiny_000.nii.gz")
    out = tmp_path / "out"
    proc = predict(tiny, run_cli, "-i", inputs, "-o", out, *args, check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mslesseg predict: error:") and match in last, proc.stderr
    assert not out.exists()
