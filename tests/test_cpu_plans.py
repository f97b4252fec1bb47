"""``mslesseg cpu-plans``: shrunk network/patch/batch, same data identifier, usable by nnU-Net."""
from __future__ import annotations

import json

import pytest
import torch

from mslesseg_nnunet.cpu_plans import make_cpu_plans, shrink_architecture, shrunk_patch_size


def resenc_plans(n_stages=6, patch=(128, 160, 112), median=(140, 170, 130)):
    """A hand-written nnU-Net 2.8 plans dict with a ResidualEncoderUNet 3d_fullres configuration."""
    arch = {
        "n_stages": n_stages, "features_per_stage": [min(32 * 2 ** i, 320) for i in range(n_stages)],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * n_stages,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n_stages - 2) + [[1, 2, 2]],
        "n_blocks_per_stage": [1, 3, 4, 6, 6, 6][:n_stages],
        "n_conv_per_stage_decoder": [1] * (n_stages - 1), "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    config = {"data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
              "batch_size": 2, "patch_size": list(patch), "median_image_size_in_voxels": list(median),
              "spacing": [1.0, 1.0, 1.0], "normalization_schemes": ["ZScoreNormalization"],
              "use_mask_for_norm": [False], "batch_dice": False,
              "architecture": {
                  "network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
                  "arch_kwargs": arch,
                  "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}
    return {"dataset_name": "Dataset777_Fake", "plans_name": "nnUNetResEncUNetMPlans",
            "configurations": {"3d_fullres": config,
                               "3d_lowres": {"inherits_from": "3d_fullres", "batch_size": 3}}}


def test_patch_scaled_clipped_and_rounded():
    # 128x160x112 scaled by (48*64*48 / 128*160*112)^(1/3) = 0.4006 -> 51.3, 64.1, 44.9 -> multiples of 8
    assert shrunk_patch_size((128, 160, 112), (140, 170, 130), (8, 8, 8)) == [48, 64, 40]
    assert shrunk_patch_size((40, 48, 40), (40, 48, 40), (8, 8, 8)) == [40, 48, 40]
    assert shrunk_patch_size((128, 128, 128), (30, 200, 200), (1, 8, 8)) == [30, 48, 48]
    assert shrunk_patch_size((16, 16, 16), (4, 4, 4), (8, 8, 8)) == [8, 8, 8]


def test_architecture_cut_to_four_stages():
    arch = shrink_architecture(resenc_plans()["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"])
    assert arch["n_stages"] == 4
    assert arch["features_per_stage"] == [8, 16, 32, 64]
    assert arch["n_blocks_per_stage"] == [1, 3, 4, 6]
    assert arch["n_conv_per_stage_decoder"] == [1, 1, 1]
    assert arch["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert len(arch["kernel_sizes"]) == 4


def test_cpu_plans_build_a_working_network():
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = make_cpu_plans(resenc_plans(), "3d_fullres", "nnUNetResEncUNetMPlansCPU")
    assert plans["plans_name"] == "nnUNetResEncUNetMPlansCPU"
    assert plans["configurations"]["3d_lowres"] == {"inherits_from": "3d_fullres", "batch_size": 3}
    cm = PlansManager(plans).get_configuration("3d_fullres")
    assert cm.data_identifier == "nnUNetPlans_3d_fullres" and cm.batch_size == 2
    assert cm.spacing == [1.0, 1.0, 1.0]
    net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                 cm.network_arch_init_kwargs_req_import, 1, 2, deep_supervision=True)
    out = net(torch.zeros(1, 1, *cm.patch_size))
    assert [o.shape[2:] for o in out] == [torch.Size(cm.patch_size)] + [
        torch.Size(s // 2 ** k for s in cm.patch_size) for k in (1, 2)]


def test_cli_writes_next_to_source_and_refuses_overwrite(run_cli, tmp_path):
    folder = tmp_path / "nnunet" / "nnUNet_preprocessed" / "Dataset777_Fake"
    folder.mkdir(parents=True)
    (folder / "nnUNetResEncUNetMPlans.json").write_text(json.dumps(resenc_plans()))
    run_cli("cpu-plans", "-d", "777", "--source-plans", "nnUNetResEncUNetMPlans",
            "--plans-name", "nnUNetResEncUNetMPlansCPU")
    written = json.loads((folder / "nnUNetResEncUNetMPlansCPU.json").read_text())
    assert written["configurations"]["3d_fullres"]["patch_size"] == [48, 64, 40]
    again = run_cli("cpu-plans", "-d", "777", "--source-plans", "nnUNetResEncUNetMPlans",
                    "--plans-name", "nnUNetResEncUNetMPlansCPU", check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_cli_patch_size_sets_the_voxel_budget(run_cli, tmp_path):
    folder = tmp_path / "nnunet" / "nnUNet_preprocessed" / "Dataset777_Fake"
    folder.mkdir(parents=True)
    (folder / "nnUNetResEncUNetMPlans.json").write_text(json.dumps(resenc_plans()))
    run_cli("cpu-plans", "-d", "777", "--source-plans", "nnUNetResEncUNetMPlans",
            "--plans-name", "nnUNetResEncUNetMPlansCPU", "--patch-size", "32", "32", "32")
    written = json.loads((folder / "nnUNetResEncUNetMPlansCPU.json").read_text())
    # 128x160x112 scaled by (32^3 / 128*160*112)^(1/3) = 0.2426 -> 31.1, 38.8, 27.2 -> multiples of 8
    assert written["configurations"]["3d_fullres"]["patch_size"] == [24, 32, 24]


@pytest.mark.parametrize("args,message", [
    (["-d", "778"], "no such dataset"),
    (["-d", "777"], "nnUNetPlans.json: plans file not found"),
    (["-d", "777", "--source-plans", "nnUNetResEncUNetMPlans", "--configuration", "2d"],
     "has no configuration '2d'"),
    (["-d", "777", "--source-plans", "nnUNetResEncUNetMPlans", "--plans-name", "nnUNetResEncUNetMPlans"],
     "must differ"),
    (["-d", "777", "--source-plans", "nnUNetResEncUNetMPlans", "--plans-name", "CPU",
      "--patch-size", "32", "0", "32"], "--patch-size 32 0 32: sizes must be positive"),
])
def test_cli_errors(tmp_path, monkeypatch, capsys, args, message):
    from mslesseg_nnunet.cli import main

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    folder = tmp_path / "nnUNet_preprocessed" / "Dataset777_Fake"
    folder.mkdir(parents=True)
    (folder / "nnUNetResEncUNetMPlans.json").write_text(json.dumps(resenc_plans()))
    assert main(["cpu-plans", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("mslesseg cpu-plans: error: ") and err.count("\n") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["nnUNetResEncUNetMPlans.json"]
