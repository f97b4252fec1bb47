"""Calibrated Inter-patch Blending: blending by hand-made windows against numpy, Dice targets
against a numpy loop, the oracle's weights from the ground truth, the heads learning, and
`mslesseg predict --blending` end to end against stock `nnUNetv2_predict`."""
from __future__ import annotations

import itertools
import json
import os
import pickle
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mslesseg_nnunet.ensembles.blending import choose_blending
from mslesseg_nnunet.ensembles.blending_predictor import BlendingPredictor
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.networks.cib_heads import dice_targets

PATCH = (4, 4, 4)
IMAGE = (4, 4, 6)          # windows start at z = 0 and z = 2 (step 0.5), x = y = 0
WINDOWS = (0, 2)
NET_STEPS, HEAD_STEPS = 40, 150
LEARN_PATCH = (16, 16, 16)
CPU_PLANS = "nnUNetPlansCPU"
CIB_TRAINER = "nnUNetTrainerCIBShort"
CASES = ("case0", "case1")


class WindowNet(nn.Module):
    """Logits (0, x[0]): p_lesion = sigmoid(x[0]). Channels 1-3 hold the voxel's x, y, z, so the
    net knows its window and whether it is flipped; its "heads" return the tables' weights of
    that window (the grid flipped with the input, as a real network's would be)."""

    def __init__(self, patch: dict, grid: dict):
        super().__init__()
        self.patch, self.grid = patch, grid
        self.cib_heads = SimpleNamespace(patch_dice=None, grid_dice=None)

    def forward(self, x):
        coords = x[0, 1:]
        z0 = int(coords[2].min())
        flipped = [a for a in range(3) if coords[a].select(a, 0)[0, 0] > coords[a].select(a, -1)[0, 0]]
        grid = torch.as_tensor(self.grid[z0], dtype=torch.float32)
        self.cib_heads.patch_dice = torch.tensor([self.patch[z0]])
        self.cib_heads.grid_dice = torch.flip(grid, flipped)[None] if flipped else grid[None]
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1]], 1)


def image(seed: int = 0) -> torch.Tensor:
    logits = np.random.default_rng(seed).normal(0, 2, IMAGE)
    return torch.as_tensor(np.concatenate([logits[None], np.indices(IMAGE)]), dtype=torch.float32)


def predictor(blending: str, net: nn.Module, mirroring: bool = False) -> BlendingPredictor:
    p = BlendingPredictor(blending, tile_step_size=0.5, use_mirroring=mirroring,
                          perform_everything_on_device=False, device=torch.device("cpu"),
                          verbose=False, allow_tqdm=False)
    p.network, p.list_of_parameters = net, [net.state_dict()]
    p.configuration_manager = SimpleNamespace(patch_size=PATCH)
    p.label_manager = SimpleNamespace(num_segmentation_heads=2)
    p.allowed_mirroring_axes = (0, 1, 2)
    return p


def lesion_probability(p: BlendingPredictor, data: torch.Tensor) -> np.ndarray:
    return torch.softmax(p.predict_logits_from_preprocessed_data(data).float(), 0)[1].numpy()


def numpy_blend(data: np.ndarray, weights: dict) -> np.ndarray:
    """sum_i alpha_i p_i / number of windows, windows [z0, z0 + 4), ``weights[z0]`` (4, 4, 4)."""
    prob = 1 / (1 + np.exp(-data[0]))
    total, count = np.zeros(IMAGE), np.zeros(IMAGE)
    for z0 in WINDOWS:
        total[..., z0:z0 + 4] += weights[z0] * prob[..., z0:z0 + 4]
        count[..., z0:z0 + 4] += 1
    return total / count


def cells_to_voxels(grid: np.ndarray) -> np.ndarray:
    return np.kron(grid, np.ones((2, 2, 2)))


GRIDS = {0: np.arange(8).reshape(2, 2, 2) / 8 + 0.05, 2: np.linspace(0.9, 0.2, 8).reshape(2, 2, 2)}
PATCHES = {0: 0.3, 2: 0.8}


@pytest.mark.parametrize("blending", ["average", "cib-patch", "cib-grid"])
def test_blending_equals_numpy_weighted_mean(blending):
    data = image()
    weights = {"average": {z: np.ones(PATCH) for z in WINDOWS},
               "cib-patch": {z: np.full(PATCH, PATCHES[z]) for z in WINDOWS},
               "cib-grid": {z: cells_to_voxels(GRIDS[z]) for z in WINDOWS}}[blending]
    got = lesion_probability(predictor(blending, WindowNet(PATCHES, GRIDS)), data)
    np.testing.assert_allclose(got, numpy_blend(data.numpy(), weights), atol=2e-3)
    if blending == "average":  # the plain mean of the windows' probabilities
        prob = torch.sigmoid(data[0]).numpy()
        np.testing.assert_allclose(got[..., 2:4], prob[..., 2:4], atol=2e-3)


def test_grid_weight_changes_only_its_cell():
    data = image(1)
    before = lesion_probability(predictor("cib-grid", WindowNet(PATCHES, GRIDS)), data)
    changed = {z: g.copy() for z, g in GRIDS.items()}
    changed[2][1, 0, 1] = 0.01  # window z 2..5: cell x 2..3, y 0..1, z 4..5
    after = lesion_probability(predictor("cib-grid", WindowNet(PATCHES, changed)), data)
    cell = np.zeros(IMAGE, bool)
    cell[2:4, 0:2, 4:6] = True
    assert not np.allclose(after[cell], before[cell], atol=1e-2)
    np.testing.assert_array_equal(after[~cell], before[~cell])


@pytest.mark.parametrize("blending", ["cib-patch", "cib-grid"])
def test_mirroring_flips_grid_weights_back(blending):
    """The net is flip-equivariant, so the 8 mirrored passes must give the unmirrored result."""
    data = image(2)
    plain = lesion_probability(predictor(blending, WindowNet(PATCHES, GRIDS)), data)
    mirrored = lesion_probability(predictor(blending, WindowNet(PATCHES, GRIDS), mirroring=True), data)
    np.testing.assert_allclose(mirrored, plain, atol=2e-3)


def test_gaussian_is_stock_nnunet_bit_for_bit():
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    data = image(3)
    ours = predictor("gaussian", WindowNet(PATCHES, GRIDS), mirroring=True)
    stock = nnUNetPredictor(tile_step_size=0.5, use_mirroring=True, perform_everything_on_device=False,
                            device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    for name in ("network", "list_of_parameters", "configuration_manager", "label_manager",
                 "allowed_mirroring_axes"):
        setattr(stock, name, getattr(ours, name))
    assert torch.equal(ours.predict_logits_from_preprocessed_data(data),
                       stock.predict_logits_from_preprocessed_data(data))


def numpy_dice(predicted: np.ndarray, lesion: np.ndarray) -> float:
    total = predicted.sum() + lesion.sum()
    return 1.0 if total == 0 else 2 * (predicted & lesion).sum() / total


def numpy_cells(shape):
    halves = [(slice(0, s // 2), slice(s // 2, s)) for s in shape]
    return list(itertools.product(*[range(2)] * len(shape))), halves


def test_dice_targets_equal_numpy_including_empty_and_ignore():
    rng = np.random.default_rng(0)
    shape = (6, 5, 7)
    logits = rng.normal(size=(4, 3, *shape)).astype(np.float32)
    logits[0, 0] += 10                      # window 0 predicts nothing ...
    labels = (rng.random((4, 1, *shape)) < 0.3).astype(np.int64) * rng.integers(1, 3, (4, 1, *shape))
    labels[0] = 0                           # ... and has no lesion: Dice 1
    labels[1, 0, :3] = 0                    # window 1: some cells empty in the label
    labels[2, 0, 0, 0, 0] = 9               # ignore label
    patch, grid = dice_targets(torch.from_numpy(logits), torch.from_numpy(labels), ignore_label=9)
    cells, halves = numpy_cells(shape)
    for b in range(4):
        valid = labels[b, 0] != 9
        predicted = (logits[b].argmax(0) > 0) & valid
        lesion = (labels[b, 0] > 0) & valid
        assert patch[b].item() == pytest.approx(numpy_dice(predicted, lesion))
        for cell in cells:
            region = tuple(halves[a][i] for a, i in enumerate(cell))
            assert grid[(b, *cell)].item() == pytest.approx(numpy_dice(predicted[region], lesion[region]))
    assert patch[0].item() == 1.0 and (grid[0] == 1).all()


@pytest.mark.parametrize("blending", ["oracle", "oracle-patch"])
def test_oracle_weights_are_the_true_dice(blending):
    data = image(4)
    data[0, 0:2, 0:2, 0:2] = -5              # a cell predicted empty ...
    labels = np.zeros(IMAGE, np.int16)
    labels[data[0].numpy() > 1.0] = 1        # ... and empty in the truth (Dice 1); elsewhere
                                             # the truth is part of what the net predicts (> 0)
    p = predictor(blending, WindowNet(PATCHES, GRIDS))
    p.labels = torch.from_numpy(labels)
    got = lesion_probability(p, data)
    predicted = data[0].numpy() > 0
    weights = {}
    for z0 in WINDOWS:
        pw, lw = predicted[..., z0:z0 + 4], labels[..., z0:z0 + 4] > 0
        if blending == "oracle-patch":
            weights[z0] = np.full(PATCH, numpy_dice(pw, lw))
        else:
            grid = np.zeros((2, 2, 2))
            for cell in itertools.product(range(2), repeat=3):
                region = tuple(slice(2 * i, 2 * i + 2) for i in cell)
                grid[cell] = numpy_dice(pw[region], lw[region])
            weights[z0] = cells_to_voxels(grid)
    np.testing.assert_allclose(got, numpy_blend(data.numpy(), weights), atol=2e-3)


def test_msseg2_cib_recipe_predicts_with_cib_grid_and_oracle_needs_gt(tmp_path):
    from mslesseg_nnunet.experiment import RECIPES, build_graph, load_experiment

    path = tmp_path / "msseg2-cib.toml"
    path.write_text(RECIPES["msseg2-cib"])
    exp = load_experiment(path, check_paths=False)
    assert [m.trainer for m in exp.training.models] == ["nnUNetTrainerCIB", "nnUNetTrainerCIBDiceFocal"]
    predict = [s.argv for s in build_graph(exp) if s.kind == "predict"]
    assert predict and all(a[a.index("--blending") + 1] == "cib-grid" for a in predict)
    path.write_text(RECIPES["msseg2-cib"].replace('blending = "cib-grid"', 'blending = "oracle"'))
    with pytest.raises(UserError, match=r"\[test\] blending: 'oracle' needs ground truth"):
        load_experiment(path, check_paths=False)
    path.write_text(RECIPES["msseg2-cib"].replace('blending = "cib-grid"', 'blending = "oracle"')
                    .replace('protocol = "msseg2"\nblending', 'protocol = "msseg2"\ngt = "gt"\nreport = false\nblending'))
    predict = [s.argv for s in build_graph(load_experiment(path, check_paths=False)) if s.kind == "predict"]
    assert all(a[a.index("--oracle-gt") + 1] == str(tmp_path / "gt") for a in predict)


def test_cib_blending_refused_without_heads(tmp_path):
    plain, cib = tmp_path / "plain.pth", tmp_path / "cib.pth"
    torch.save({"network_weights": {"encoder.w": torch.zeros(1)}}, plain)
    torch.save({"network_weights": {"encoder.w": torch.zeros(1), "cib_heads.patch.weight": torch.zeros(1)}},
               cib)
    assert choose_blending(tmp_path, plain, None, False) == "gaussian"
    assert choose_blending(tmp_path, cib, None, False) == "cib-grid"
    assert choose_blending(tmp_path, plain, "oracle", False) == "oracle"
    with pytest.raises(UserError, match=f"{tmp_path}: --blending cib-patch needs"):
        choose_blending(tmp_path, plain, "cib-patch", False)
    with pytest.raises(UserError, match="label-based"):
        choose_blending(tmp_path, cib, None, True)


@pytest.fixture(scope="module")
def plans(tiny_plans):
    return tiny_plans


def blob_windows(rng: np.random.Generator, n: int, patch) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` one-channel windows, about half with one bright ball lesion of random size."""
    grid = np.indices(patch)
    images, labels = [], []
    for _ in range(n):
        mask = np.zeros(patch, bool)
        if rng.random() < 0.6:
            centre = rng.uniform(4, np.array(patch) - 4)[:, None, None, None]
            mask = ((grid - centre) ** 2).sum(0) <= rng.uniform(1.5, 3.5) ** 2
        images.append(rng.normal(0, 1, patch) + 4.0 * mask)
        labels.append(mask)
    return (torch.as_tensor(np.array(images)[:, None], dtype=torch.float32),
            torch.as_tensor(np.array(labels)[:, None], dtype=torch.float32))


@pytest.mark.slow
def test_cib_heads_learn_the_dice(plans):
    """nnUNetTrainerCIBShort's network (CPU-shrunk default plans) trained with the CIB loss
    (lambda1 = lambda2 = 1) on blob windows (empty ones the net gets right, lesions it segments
    well or poorly): NET_STEPS steps of the whole network, then HEAD_STEPS of the heads alone,
    the U-Net frozen so that the Dice targets hold still. On held-out windows both heads explain
    much of the true Dice's spread (MSE below 0.6 x its variance, correlation > 0.6; measured
    0.27 x and 0.88 for the patch head per window, 0.37 x and 0.87 for the grid head per cell),
    not just its mean."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from mslesseg_nnunet.cib_loss import CIBLoss
    from mslesseg_nnunet.cpu_plans import make_cpu_plans
    from mslesseg_nnunet.trainer_catalog import trainer_classes

    manager = PlansManager(make_cpu_plans(json.loads(plans["nnUNetPlans"].read_text()), "3d_fullres",
                                          CPU_PLANS, target_patch=LEARN_PATCH))
    configuration = manager.get_configuration("3d_fullres")
    torch.manual_seed(0)
    net = trainer_classes()[CIB_TRAINER].build_network_architecture(manager, configuration, 1, 2,
                                                                   enable_deep_supervision=False)
    heads = net.cib_heads
    segmentation = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                                  dice_class=MemoryEfficientSoftDiceLoss)
    loss = CIBLoss(segmentation, heads)
    loss.lambda_grid = 1.0
    rng = np.random.default_rng(0)
    patch = tuple(configuration.patch_size)
    for trained, steps, batch, lr in ((net, NET_STEPS, 2, 3e-3), (heads, HEAD_STEPS, 4, 1e-2)):
        net.requires_grad_(False)
        trained.requires_grad_(True)
        optimizer = torch.optim.Adam(trained.parameters(), lr=lr)
        for _ in range(steps):
            images, labels = blob_windows(rng, batch, patch)
            optimizer.zero_grad()
            loss(net(images), labels).backward()
            optimizer.step()
    images, labels = blob_windows(np.random.default_rng(1), 32, patch)
    with torch.no_grad():
        true_patch, true_grid = (t.numpy() for t in dice_targets(net(images), labels))
    assert np.std(true_patch) > 0.1 and np.std(true_grid) > 0.1
    scores = {}
    for head, guess, truth in (("patch", heads.patch_dice, true_patch), ("grid", heads.grid_dice, true_grid)):
        guess, truth = guess.numpy().ravel(), truth.ravel()
        scores[head] = (np.mean((guess - truth) ** 2), np.var(truth), np.corrcoef(guess, truth)[0, 1])
    print("CIB heads on held-out windows (MSE, variance of the true Dice, correlation):", scores)
    assert all(mse < 0.6 * variance and correlation > 0.6 for mse, variance, correlation in scores.values()), \
        scores


def test_paper_patch_head_reads_the_deepest_encoder_features(plans):
    """``cib_patch_from_encoder``: the patch head is fed the bottleneck, the grid head the
    full-resolution decoder stage; outputs (B,) and (B, 2, 2, 2) in [0, 1]."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from mslesseg_nnunet.cpu_plans import make_cpu_plans
    from mslesseg_nnunet.networks.cib_heads import attach_cib_heads

    manager = PlansManager(make_cpu_plans(json.loads(plans["nnUNetPlans"].read_text()), "3d_fullres",
                                          CPU_PLANS, target_patch=(16, 16, 16)))
    net = nnUNetTrainer.build_network_architecture(
        manager, manager.get_configuration("3d_fullres"), 1, 2, enable_deep_supervision=False)
    heads = attach_cib_heads(net, from_encoder=True).cib_heads
    channels = net.encoder.output_channels
    assert heads.patch.in_features == 2 * channels[-1] and heads.grid_conv.in_channels == channels[0]
    with torch.no_grad():
        net(torch.randn(3, 1, 16, 16, 16))
    assert heads.patch_dice.shape == (3,) and heads.grid_dice.shape == (3, 2, 2, 2)
    assert ((heads.grid_dice > 0) & (heads.grid_dice < 1)).all()


def test_pool_cells_equals_numpy():
    from mslesseg_nnunet.networks.cib_heads import pool_cells

    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4, 7)).astype(np.float32)
    got = pool_cells(torch.from_numpy(x)).numpy()
    cells, halves = numpy_cells(x.shape[2:])
    for cell in cells:
        region = x[(..., *(halves[a][i] for a, i in enumerate(cell)))].reshape(2, 3, -1)
        np.testing.assert_allclose(got[(..., *cell)], np.concatenate([region.mean(2), region.max(2)], 1),
                                   rtol=1e-5, atol=1e-6)


def save_model(root, plans: dict, trainer: str):
    """``nnUNet_results/.../TRAINER__nnUNetPlansCPU__3d_fullres`` with a checkpoint of the
    trainer's network from the plans (random weights), as nnU-Net's predictor reads it."""
    from networks_helpers import DATASET_NAME
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from mslesseg_nnunet.trainer_catalog import trainer_classes

    folder = root / "nnUNet_results" / DATASET_NAME / f"{trainer}__{CPU_PLANS}__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    shutil.copy(root / "nnUNet_raw" / DATASET_NAME / "dataset.json", folder / "dataset.json")
    manager = PlansManager(plans)
    torch.manual_seed(0)
    network = trainer_classes().get(trainer, nnUNetTrainer).build_network_architecture(
        manager, manager.get_configuration("3d_fullres"), 1, 2, enable_deep_supervision=False)
    torch.save({"network_weights": network.state_dict(), "trainer_name": trainer,
                "init_args": {"configuration": "3d_fullres"}, "inference_allowed_mirroring_axes": None},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


@pytest.fixture(scope="module")
def models(plans):
    from networks_helpers import DATASET_NAME

    from mslesseg_nnunet.cpu_plans import make_cpu_plans
    from mslesseg_nnunet.nnunet_env import nnunet_environment

    root = plans["nnUNetPlans"].parents[2]
    cpu = make_cpu_plans(json.loads(plans["nnUNetPlans"].read_text()), "3d_fullres", CPU_PLANS,
                         target_patch=(16, 16, 16))
    raw = root / "nnUNet_raw" / DATASET_NAME
    return SimpleNamespace(env=nnunet_environment(root, environ={}), cib=save_model(root, cpu, CIB_TRAINER),
                           plain=save_model(root, cpu, "nnUNetTrainer"), inputs=raw / "imagesTr",
                           gt=raw / "labelsTr")


def predict(models, run_cli, *args, check=True):
    return run_cli("predict", "-i", models.inputs, "--device", "cpu", "--workers", "0",
                   "--save-probabilities", *args, env=models.env, check=check)


def probability(out, case):
    return np.load(out / "probabilities" / f"{case}.npz")["probability"]


@pytest.mark.slow
def test_gaussian_on_a_cib_model_is_stock_nnunetv2_predict(models, tmp_path, run_cli):
    """Stock nnUNetv2_predict runs the CIB model (heads in its checkpoint); `--blending gaussian`
    gives exactly its probabilities."""
    from networks_helpers import DATASET_ID
    from tiny_nnunet import run_tool

    from mslesseg_nnunet.ensembles.members import to_nibabel_order

    stock = tmp_path / "stock"
    run_tool("nnUNetv2_predict", "-i", models.inputs, "-o", stock, "-d", DATASET_ID, "-c", "3d_fullres",
             "-tr", CIB_TRAINER, "-p", CPU_PLANS, "-f", "0", "-device", "cpu", "--save_probabilities",
             "-npp", "1", "-nps", "1", env={**os.environ, **models.env})
    out = tmp_path / "ours"
    predict(models, run_cli, "-o", out, "--models", models.cib, "--blending", "gaussian")
    for case in CASES:
        with open(stock / f"{case}.pkl", "rb") as handle:
            properties = pickle.load(handle)
        theirs = to_nibabel_order(np.load(stock / f"{case}.npz")["probabilities"][1], properties)
        assert np.array_equal(probability(out, case), theirs)


@pytest.mark.slow
def test_default_blendings_of_a_mixed_ensemble_and_the_oracle(models, tmp_path, run_cli):
    """CIB members blend with cib-grid, stock ones with gaussian; the oracle (any model) only
    lowers the average blending's lesion probability (true Dice weights <= 1)."""
    mixed, gaussian = tmp_path / "mixed", tmp_path / "gaussian"
    predict(models, run_cli, "-o", mixed, "--models", models.cib, models.plain)
    members = json.loads((mixed / "ensemble.json").read_text())["members"]
    assert [m["blending"] for m in members] == ["cib-grid", "gaussian"]
    predict(models, run_cli, "-o", gaussian, "--models", models.cib, models.plain, "--blending", "gaussian")
    assert not np.allclose(probability(mixed, CASES[0]), probability(gaussian, CASES[0]), atol=1e-3)
    average, oracle = tmp_path / "average", tmp_path / "oracle"
    predict(models, run_cli, "-o", average, "--models", models.plain, "--blending", "average")
    predict(models, run_cli, "-o", oracle, "--models", models.plain, "--blending", "oracle",
            "--oracle-gt", models.gt)
    assert json.loads((oracle / "ensemble.json").read_text())["members"][0]["blending"] == "oracle"
    for case in CASES:
        assert (probability(oracle, case) <= probability(average, case) + 2e-3).all()
        assert (probability(oracle, case) < probability(average, case) - 0.05).any()


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["no_heads", "no_gt", "gt_missing_case"])
def test_refusals_write_nothing(models, tmp_path, run_cli, problem):
    args, match = {
        "no_heads": (["--models", models.cib, models.plain, "--blending", "cib-grid"],
                     f"{models.plain}: --blending cib-grid needs a model trained with CIB heads"),
        "no_gt": (["--models", models.cib, "--blending", "oracle"], "--oracle-gt DIR"),
        "gt_missing_case": (["--models", models.cib, "--blending", "oracle", "--oracle-gt", tmp_path / "gt"],
                            "no ground truth for case case1"),
    }[problem]
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "case0.nii.gz").symlink_to(models.gt / "case0.nii.gz")
    out = tmp_path / "out"
    proc = predict(models, run_cli, "-o", out, *args, check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mslesseg predict: error:") and match in last, proc.stderr
    assert not out.exists()
