"""Our trainers under stock nnU-Net: nnUNetv2_train / nnUNetv2_predict subprocesses on a tiny dataset,
plus every trainer with the residual-encoder (ResEnc-M) preset, in process."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from tiny_nnunet import LABELS, build_tiny_nnunet, run_tool, training_env

from mslesseg_nnunet.trainer_catalog import trainer_classes

pytestmark = pytest.mark.slow

# The robustness and lesion-synthesis trainers (one augmentation or loss mixin on nnU-Net's default
# network, and CIB + Tversky) run a training step through their own transforms in
# test_robustness.py and test_lesion_synthesis.py instead (CI time).
# UMambaEnc less the Mamba layers of its largest stages (same classes, same trainer code): its
# network is checked in test_networks; a run of its own would add minutes, nothing new.
SAME_NETWORK_ON_CPU_PLANS = ("nnUNetTrainerUMambaEncCapped",)
FULL = sorted(name for name, cls in trainer_classes().items() if not name.endswith("Short")
              and not cls.__module__.endswith(("mslesseg_robustness_trainers", "mslesseg_lesionsynth_trainers"))
              and name != "nnUNetTrainerCIBTversky"
              and name not in SAME_NETWORK_ON_CPU_PLANS)
# Stock-run in nnU-Net's 2d configuration (test_unet_plus_plus_2d_configuration); 3d in process below.
STOCK_2D = ("nnUNetTrainerUNetPlusPlus",)
# A network's Dice+Focal twin is its network class plus DiceFocalLossMixin, both stock-run on their
# own (nnUNetTrainerDiceFocal, the network's Dice+CE trainer); the twin trains in process below.
COMPOSED = tuple(name for name in FULL if name.endswith("DiceFocal") and name != "nnUNetTrainerDiceFocal")
BASES = ["nnUNetTrainer", *(name for name in FULL if name not in STOCK_2D + COMPOSED)]
RUNS = [(name, "binary") for name in BASES] + [
    (name, labelling) for name in ("nnUNetTrainer", "nnUNetTrainerDiceFocal") for labelling in ("msl", "dbl")]
CPU_PLANS = "nnUNetPlansCPU"
CASE = "tiny_000"
PARALLEL_RUNS = 2
SLOWEST = ("nnUNetTrainerLightMUNet", "nnUNetTrainerSwinUNETR")  # started first
# MONAI networks read only the first-stage width and the patch, the same in both plans families.
PLANS_FAMILY_BLIND = ("nnUNetTrainerSwinUNETR", "nnUNetTrainerUNETR", "nnUNetTrainerSegResNet")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return build_tiny_nnunet(tmp_path_factory.mktemp("tiny_nnunet"))


def train_and_predict(tiny, trainer: str, labelling: str, workdir: Path, configuration: str = "3d_fullres",
                      plans: str = CPU_PLANS) -> dict:
    """Stock nnUNetv2_train (1 epoch x 1 iteration) then nnUNetv2_predict on one training case."""
    name = f"{trainer}Short"
    dataset = str(tiny.dataset_ids[labelling])
    env = {**training_env(tiny.env), "MSLESSEG_SHORT_EPOCHS": "1", "MSLESSEG_SHORT_ITERS": "1"}
    run_tool("nnUNetv2_train", dataset, configuration, "0", "-tr", name, "-p", plans,
             "-device", "cpu", env=env)
    images = workdir / "in"
    images.mkdir()
    for channel in (0, 1):
        source = tiny.raw_dir(labelling) / "imagesTr" / f"{CASE}_{channel:04d}.nii.gz"
        (images / source.name).symlink_to(source)
    run_tool("nnUNetv2_predict", "-i", images, "-o", workdir / "out", "-d", dataset, "-c", configuration,
             "-tr", name, "-p", plans, "-f", "0", "-device", "cpu", "--disable_tta",
             "-npp", "0", "-nps", "0", env=env)
    return {"model": tiny.results_dir(labelling) / f"{name}__{plans}__{configuration}",
            "prediction": workdir / "out" / f"{CASE}.nii.gz"}


@pytest.fixture(scope="session")
def stock_runs(tiny, request, tmp_path_factory):
    """Futures of the selected (trainer, labelling) runs, two subprocess pipelines at a time
    (most of each run is single-threaded interpreter start-up)."""
    wanted = [(item.callspec.params["trainer"], item.callspec.params["labelling"])
              for item in request.session.items
              if getattr(item, "originalname", None) == "test_stock_train_then_predict"]
    wanted.sort(key=lambda job: job[0] not in SLOWEST)
    pool = ThreadPoolExecutor(max_workers=PARALLEL_RUNS)
    futures = {job: pool.submit(train_and_predict, tiny, *job, tmp_path_factory.mktemp("run"))
               for job in wanted}
    yield futures
    pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("trainer,labelling", RUNS)
def test_stock_train_then_predict(stock_runs, tiny, trainer, labelling):
    check_run(stock_runs[(trainer, labelling)].result(), tiny, trainer, labelling)


def check_run(result: dict, tiny, trainer: str, labelling: str) -> None:
    """The short run's checkpoint, validation summary and a prediction on the reference's grid."""
    name = f"{trainer}Short"
    checkpoint = torch.load(result["model"] / "fold_0" / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    assert checkpoint["trainer_name"] == name
    assert checkpoint["current_epoch"] == 1  # MSLESSEG_SHORT_EPOCHS took effect
    assert checkpoint["inference_allowed_mirroring_axes"] is None
    assert (result["model"] / "fold_0" / "validation" / "summary.json").is_file()
    if "CIB" in trainer:  # heads in the checkpoint; one epoch: first half of the schedule, logged
        assert any(key.startswith("cib_heads.") for key in checkpoint["network_weights"])
        logged = checkpoint["logging"]
        assert logged["cib_lambda_patch"] == [1.0] and logged["cib_lambda_grid"] == [0.0]
        assert all(len(logged[f"cib_{h}_mse_{s}"]) == 1 for h in ("patch", "grid") for s in ("tr", "val"))
        assert (result["model"] / "fold_0" / "progress_cib.png").is_file()
    reference = nib.load(tiny.raw_dir(labelling) / "labelsTr" / f"{CASE}.nii.gz")
    predicted = nib.load(result["prediction"])
    assert predicted.shape == reference.shape
    np.testing.assert_allclose(predicted.affine, reference.affine, atol=1e-5)
    assert set(np.unique(np.asarray(predicted.dataobj))) <= set(LABELS[labelling].values())


def test_unet_plus_plus_2d_configuration(tiny, tmp_path):
    """UNet++ on nnU-Net's 2d configuration: stock preprocessing, CPU plans, training and prediction."""
    dataset = str(tiny.dataset_ids["binary"])
    run_tool("nnUNetv2_preprocess", "-d", dataset, "-plans_name", "nnUNetPlans", "-c", "2d", "-np", "1",
             env=tiny.env)
    run_tool("mslesseg", "cpu-plans", "-d", dataset, "--configuration", "2d", "--plans-name", "nnUNetPlans2dCPU",
             env=tiny.env)
    result = train_and_predict(tiny, "nnUNetTrainerUNetPlusPlus", "binary", tmp_path, "2d", "nnUNetPlans2dCPU")
    check_run(result, tiny, "nnUNetTrainerUNetPlusPlus", "binary")


def random_batch(trainer):
    """A batch shaped like nnU-Net's dataloader output for this trainer's plans."""
    patch = trainer.configuration_manager.patch_size
    data = torch.randn(trainer.batch_size, trainer.num_input_channels, *patch)
    scales = trainer._get_deep_supervision_scales() or [[1.0] * len(patch)]
    target = [torch.randint(0, 2, (trainer.batch_size, 1, *[round(p * s) for p, s in zip(patch, sc)]))
              .float() for sc in scales]
    return {"data": data, "target": target if trainer.enable_deep_supervision else target[0]}


@pytest.mark.parametrize("trainer", [name for name in FULL if name not in PLANS_FAMILY_BLIND])
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
