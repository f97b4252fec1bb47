"""Our trainers under stock nnU-Net: nnUNetv2_train / nnUNetv2_predict subprocesses on a tiny dataset,
plus every trainer with the residual-encoder (ResEnc-M) preset, in process."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from tiny_nnunet import LABELS, build_tiny_nnunet, run_tool, training_env

from mslesseg_nnunet.trainer_catalog import trainer_classes

pytestmark = pytest.mark.slow

FULL = sorted(name for name in trainer_classes() if not name.endswith("Short"))
BASES = ["nnUNetTrainer", *FULL]
RUNS = [(name, "binary") for name in BASES] + [
    (name, labelling) for name in ("nnUNetTrainer", "nnUNetTrainerDiceFocal") for labelling in ("msl", "dbl")]
CPU_PLANS = "nnUNetPlansCPU"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return build_tiny_nnunet(tmp_path_factory.mktemp("tiny_nnunet"))


@pytest.mark.parametrize("trainer,labelling", RUNS)
def test_stock_train_then_predict(tiny, trainer, labelling, tmp_path):
    name = f"{trainer}Short"
    dataset = str(tiny.dataset_ids[labelling])
    env = {**training_env(tiny.env), "MSLESSEG_SHORT_EPOCHS": "1", "MSLESSEG_SHORT_ITERS": "2"}
    run_tool("nnUNetv2_train", dataset, "3d_fullres", "0", "-tr", name, "-p", CPU_PLANS,
             "-device", "cpu", env=env)
    fold = tiny.results_dir(labelling) / f"{name}__{CPU_PLANS}__3d_fullres" / "fold_0"
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == name
    assert checkpoint["current_epoch"] == 1  # MSLESSEG_SHORT_EPOCHS took effect

    case = "tiny_000"
    images = tmp_path / "in"
    images.mkdir()
    for channel in (0, 1):
        source = tiny.raw_dir(labelling) / "imagesTr" / f"{case}_{channel:04d}.nii.gz"
        (images / source.name).symlink_to(source)
    out = tmp_path / "out"
    run_tool("nnUNetv2_predict", "-i", images, "-o", out, "-d", dataset, "-c", "3d_fullres",
             "-tr", name, "-p", CPU_PLANS, "-f", "0", "-device", "cpu", "--disable_tta",
             "-npp", "0", "-nps", "0", env=env)
    reference = nib.load(tiny.raw_dir(labelling) / "labelsTr" / f"{case}.nii.gz")
    predicted = nib.load(out / f"{case}.nii.gz")
    assert predicted.shape == reference.shape
    np.testing.assert_allclose(predicted.affine, reference.affine, atol=1e-5)
    assert set(np.unique(np.asarray(predicted.dataobj))) <= set(LABELS[labelling].values())


def random_batch(trainer):
    """A batch shaped like nnU-Net's dataloader output for this trainer's plans."""
    patch = trainer.configuration_manager.patch_size
    data = torch.randn(trainer.batch_size, trainer.num_input_channels, *patch)
    scales = trainer._get_deep_supervision_scales() or [[1.0] * len(patch)]
    target = [torch.randint(0, 2, (trainer.batch_size, 1, *[round(p * s) for p, s in zip(patch, sc)]))
              .float() for sc in scales]
    return {"data": data, "target": target if trainer.enable_deep_supervision else target[0]}


@pytest.mark.parametrize("trainer", FULL)
def test_resenc_preset_trains_and_rebuilds(tiny, trainer, tmp_path, monkeypatch):
    """Each trainer with nnUNetResEncUNetMPlans (CPU-shrunk): one training step, then the
    network rebuilt from the class (as nnUNetv2_predict does) accepts the trained weights."""
    monkeypatch.setenv("nnUNet_preprocessed", tiny.env["nnUNet_preprocessed"])
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    folder = os.path.join(tiny.env["nnUNet_preprocessed"], tiny.dataset_name("binary"))
    plans = load_json(os.path.join(folder, "nnUNetResEncUNetMPlansCPU.json"))
    plans["continue_training"] = False
    cls = trainer_classes()[trainer]
    torch.manual_seed(0)
    instance = cls(plans, "3d_fullres", 0, load_json(os.path.join(folder, "dataset.json")),
                   torch.device("cpu"))
    instance.initialize()
    assert "ResidualEncoder" in str(plans["configurations"]["3d_fullres"]["architecture"])
    loss = instance.train_step(random_batch(instance))["loss"]
    assert np.isfinite(loss)
    rebuilt = cls.build_network_architecture(instance.plans_manager, instance.configuration_manager,
                                             instance.num_input_channels,
                                             instance.label_manager.num_segmentation_heads,
                                             enable_deep_supervision=False)
    rebuilt.load_state_dict(instance.network.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        out = rebuilt(random_batch(instance)["data"][:1])
    assert out.shape == (1, 2, *instance.configuration_manager.patch_size)
