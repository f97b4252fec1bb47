"""Issue 15's augmentations and loss against independent references: IQDA filters vs scipy.ndimage,
lesion-mask variants on a hand-made mask, Tversky vs numpy and nnU-Net's soft Dice, offline GIN
views (count, background, splits grouping, CLI); each new trainer runs one training step."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.image_quality import IQDATransform, gaussian_blur, mean_filter, unsharp_mask
from mslesseg_nnunet.mask_variants import DILATE, ERODE, KEEP, REMOVE, LesionMaskVariantTransform, \
    lesion_components, lesion_mask_variant
from mslesseg_nnunet.tversky_loss import TverskyLoss


def volume(seed=0, shape=(2, 15, 13, 11)):
    return torch.as_tensor(np.random.default_rng(seed).normal(size=shape), dtype=torch.float32)


# --- IQDA ---------------------------------------------------------------------------------------

# batchgeneratorsv2's kernel spans round-to-odd(6 sigma + 0.5) taps with mirrored edges:
# radius 3 for sigma 1, 4 for sigma 1.5 (scipy's mode "mirror").
@pytest.mark.parametrize("sigma,radius", [(1.0, 3), (1.5, 4)])
def test_blur_and_unsharp_mask_equal_scipy(sigma, radius):
    img = volume()
    reference = ndimage.gaussian_filter(img.numpy(), sigma, mode="mirror", radius=radius, axes=(1, 2, 3))
    np.testing.assert_allclose(gaussian_blur(img, sigma).numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(unsharp_mask(img, sigma).numpy(), 2 * img.numpy() - reference, atol=1e-5)


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mean_filter_equals_scipy_uniform_filter(size, axis):
    img = volume(1)
    reference = ndimage.uniform_filter1d(img.numpy(), size, axis=axis + 1, mode="nearest")
    np.testing.assert_allclose(mean_filter(img, size, axis).numpy(), reference, atol=1e-5)


def test_iqda_draws_one_degradation_per_channel_within_the_paper_ranges():
    img = volume(2)
    seg = torch.zeros((1, *img.shape[1:]), dtype=torch.int16)
    transform = IQDATransform()
    seen = set()
    torch.manual_seed(0)
    for _ in range(20):
        params = transform.get_parameters(image=img)
        out = transform.apply({"image": img.clone(), "segmentation": seg}, **params)
        assert out["segmentation"] is seg
        for c, (kind, *args) in enumerate(params["draws"]):
            seen.add(kind)
            if kind == "thick":
                assert args[0] in (2, 3, 4) and args[1] == 0
                expected = ndimage.uniform_filter1d(img[c].numpy(), args[0], axis=0, mode="nearest")
            else:
                assert 0.5 <= args[0] <= 1.75
                expected = (unsharp_mask if kind == "sharpen" else gaussian_blur)(img[c:c + 1], args[0])[0]
            np.testing.assert_allclose(out["image"][c].numpy(), np.asarray(expected), atol=1e-5)
    assert seen == {"blur", "sharpen", "thick"}
    flat = transform.get_parameters(image=img[:, :, :, 0])  # a 2D patch: no slice axis
    assert all(kind != "thick" for kind, *_ in flat["draws"])


# --- Lesion-mask variants -----------------------------------------------------------------------

A, B, C = (slice(2, 5),) * 3, (10, 10, 10), (slice(8, 11), slice(2, 5), slice(8, 11))


def hand_made(label_a=1):
    """Background 1.0, three lesions at 5.0: a 3x3x3 cube A, a single voxel B, a 3x3x3 cube C."""
    labels = np.zeros((14, 14, 14), np.int16)
    labels[A], labels[B], labels[C] = label_a, 1, 1
    image = np.where(labels > 0, 5.0, 1.0)[None].repeat(2, 0)
    return image, labels


def actions_for(labels, ignore_label=None, **by_lesion):
    components, n = lesion_components(labels, ignore_label)
    assert n == 3
    actions = np.full(n, KEEP)
    centres = {"A": (3, 3, 3), "B": B, "C": (9, 3, 9)}
    for lesion, action in by_lesion.items():
        actions[components[centres[lesion]] - 1] = action
    return actions


def test_erosion_and_removal_with_in_painting_on_a_hand_made_mask():
    image, labels = hand_made()
    new_image, new = lesion_mask_variant(image, labels, actions_for(labels, A=ERODE, B=ERODE, C=REMOVE))
    assert new[A].sum() == 1 and new[3, 3, 3] == 1  # the cube's core survives one erosion
    assert new[B] == 1  # one erosion would empty B: it stays
    assert (new[C] == 0).all()
    cross = ndimage.generate_binary_structure(3, 1)
    filled = np.zeros(labels.shape, bool)
    filled[C] = True
    filled = ndimage.binary_dilation(filled, cross)
    assert filled.sum() == 27 + 6 * 9
    np.testing.assert_array_equal(new_image[:, filled], 1.0)  # C and its margin look like the background
    np.testing.assert_array_equal(new_image[:, ~filled], image[:, ~filled])  # erosion keeps the image


def test_dilation_keeps_the_label_and_spares_outside_ignore_and_other_lesions():
    image, labels = hand_made(label_a=2)
    labels[5, 2:5, 2:5] = -1  # nnU-Net's outside-the-brain next to A's +x face
    labels[1, 2:5, 2:5] = 7  # ignore label next to A's -x face
    new_image, new = lesion_mask_variant(image, labels, actions_for(labels, 7, A=DILATE), ignore_label=7)
    assert (new == 2).sum() == 27 + 6 * 9 - 2 * 9
    assert (new[5, 2:5, 2:5] == -1).all() and (new[1, 2:5, 2:5] == 7).all()
    assert new[B] == 1 and (new[C] == 1).all()
    np.testing.assert_array_equal(new_image, image)


def test_transform_draws_each_lesions_action_with_its_probability():
    labels = np.zeros((40, 40, 40), np.int16)
    labels[::2, ::2, ::2] = 1  # 8000 one-voxel lesions
    torch.manual_seed(0)
    actions = LesionMaskVariantTransform(0.25, 0.25, 0.1).get_parameters(
        segmentation=torch.as_tensor(labels)[None])["actions"]
    assert len(actions) == 8000
    frequencies = np.bincount(actions, minlength=4) / len(actions)
    np.testing.assert_allclose(frequencies, [0.4, 0.25, 0.25, 0.1], atol=0.02)


def test_transform_removes_every_lesion_with_p_remove_one():
    image, labels = hand_made()
    transform = LesionMaskVariantTransform(p_erode=0, p_dilate=0, p_remove=1)
    out = transform(image=torch.as_tensor(image, dtype=torch.float32),
                    segmentation=torch.as_tensor(labels)[None])
    assert (out["segmentation"] == 0).all()
    assert (out["image"] == 1.0).all()
    with pytest.raises(ValueError):
        LesionMaskVariantTransform(p_erode=0.6, p_dilate=0.6)


# --- Tversky ------------------------------------------------------------------------------------

def numpy_tversky(logits, target, alpha, beta, smooth, batch_dice):
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    g = np.eye(logits.shape[1])[target[:, 0]].transpose(0, 4, 1, 2, 3)
    axes = (0, 2, 3, 4) if batch_dice else (2, 3, 4)
    tp, fp, fn = ((p * g).sum(axes), (p * (1 - g)).sum(axes), ((1 - p) * g).sum(axes))
    index = (2 * tp + smooth) / (2 * tp + 2 * alpha * fp + 2 * beta * fn + smooth)
    return -index[..., 1:].mean()


@pytest.mark.parametrize("batch_dice", [False, True])
def test_tversky_equals_numpy(batch_dice):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5, 6, 4))
    target = rng.integers(0, 3, (2, 1, 5, 6, 4))
    loss = TverskyLoss(torch.nn.Softmax(1), batch_dice=batch_dice, do_bg=False, smooth=1e-5, ddp=False)
    assert (loss.alpha, loss.beta) == (0.3, 0.7)
    ours = loss(torch.as_tensor(logits), torch.as_tensor(target)).item()
    assert ours == pytest.approx(numpy_tversky(logits, target, 0.3, 0.7, 1e-5, batch_dice), rel=1e-6)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_tversky_half_half_is_nnunet_soft_dice(batch_dice):
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss, SoftDiceLoss
    from nnunetv2.utilities.helpers import softmax_helper_dim1

    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 6, 5, 4), torch.randint(0, 3, (2, 1, 6, 5, 4))
    mask = torch.rand(2, 1, 6, 5, 4) > 0.2
    kwargs = {"apply_nonlin": softmax_helper_dim1, "batch_dice": batch_dice, "do_bg": False, "smooth": 1e-5,
              "ddp": False}
    tversky = TverskyLoss(alpha=0.5, beta=0.5, **kwargs)
    assert tversky(logits, target).item() == pytest.approx(
        MemoryEfficientSoftDiceLoss(**kwargs)(logits, target).item(), rel=1e-6)
    assert tversky(logits, target, mask).item() == pytest.approx(
        SoftDiceLoss(**kwargs)(logits, target, mask).item(), rel=1e-6)


# --- Offline GIN views --------------------------------------------------------------------------

def test_gin_views_count_background_and_seed():
    from mslesseg_nnunet.dataset_conversion.gin_views import gin_views

    image = np.abs(volume(3).numpy()) + 1
    image[:, :3] = 0  # outside the head
    views = list(gin_views(image, 4, seed=5))
    assert len(views) == 4 and all(v.shape == image.shape for v in views)
    assert all((v[:, :3] == 0).all() and not np.allclose(v, image) for v in views)
    assert not np.allclose(views[0], views[1])
    np.testing.assert_array_equal(views[2], list(gin_views(image, 4, seed=5))[2])


def test_views_join_their_originals_training_folds_only():
    from mslesseg_nnunet.dataset_conversion.gin_views import views_splits

    folds = [{"train": ["P2_T1", "P3_T1"], "val": ["P1_T1", "P1_T2"]},
             {"train": ["P1_T1", "P1_T2"], "val": ["P2_T1", "P3_T1"]}]
    out = views_splits(folds, 2)
    assert out[0] == {"train": ["P2_T1", "P3_T1", "P2_T1_gin01", "P2_T1_gin02", "P3_T1_gin01", "P3_T1_gin02"],
                      "val": ["P1_T1", "P1_T2"]}
    assert out[1]["val"] == ["P2_T1", "P3_T1"] and len(out[1]["train"]) == 6


def write_source(raw, preprocessed):
    """Dataset950_Src: patient P1 with two scans, P2 and P3 with one; 2 channels, splits by patient."""
    folder = raw / "Dataset950_Src"
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    cases = {"P1_T1": "P1", "P1_T2": "P1", "P2_T1": "P2", "P3_T1": "P3"}
    for case in cases:
        for c in range(2):
            data = rng.uniform(1, 2, (8, 8, 8)).astype(np.float32)
            data[:2] = 0
            nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        label = (rng.random((8, 8, 8)) > 0.9).astype(np.uint8)
        nib.save(nib.Nifti1Image(label, np.eye(4)), folder / "labelsTr" / f"{case}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "FLAIR", "1": "T2"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": 4, "file_ending": ".nii.gz", "lesion_labels": [1], "labelling": {"kind": "binary"}}))
    (folder / "case_map.json").write_text(json.dumps(
        {case: {"patient": p, "output": f"{p}/{case}_mask.nii.gz"} for case, p in cases.items()}))
    (preprocessed / "Dataset950_Src").mkdir(parents=True)
    splits = [{"train": ["P2_T1", "P3_T1"], "val": ["P1_T1", "P1_T2"]},
              {"train": ["P1_T1", "P1_T2", "P3_T1"], "val": ["P2_T1"]},
              {"train": ["P1_T1", "P1_T2", "P2_T1"], "val": ["P3_T1"]}]
    (preprocessed / "Dataset950_Src" / "splits_final.json").write_text(json.dumps(splits))
    return cases


def test_gin_views_cli_writes_views_with_patient_grouped_splits(tmp_path, run_cli, monkeypatch):
    from mslesseg_nnunet.dataset_conversion.gin_views import gin_views_dataset

    raw, preprocessed = tmp_path / "nnunet" / "nnUNet_raw", tmp_path / "nnunet" / "nnUNet_preprocessed"
    cases = write_source(raw, preprocessed)
    run_cli("gin-views", "--source", "950", "--dataset-id", "951", "--views", "3", "--workers", "1")
    out = raw / "Dataset951_SrcGIN"
    assert len(list((out / "imagesTr").iterdir())) == 4 * 4 * 2
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 16
    case_map = json.loads((out / "case_map.json").read_text())
    for case in cases:
        original = nib.load(out / "imagesTr" / f"{case}_0000.nii.gz").get_fdata()
        label = nib.load(out / "labelsTr" / f"{case}.nii.gz").get_fdata()
        for v in (1, 2, 3):
            view = f"{case}_gin{v:02d}"
            image = nib.load(out / "imagesTr" / f"{view}_0000.nii.gz").get_fdata()
            assert not np.allclose(image, original) and (image[:2] == 0).all()
            np.testing.assert_array_equal(nib.load(out / "labelsTr" / f"{view}.nii.gz").get_fdata(), label)
            assert case_map[view]["patient"] == cases[case] and case_map[view]["gin_view_of"] == case
    splits = json.loads((preprocessed / "Dataset951_SrcGIN" / "splits_final.json").read_text())
    for fold in splits:
        val_patients = {cases[c] for c in fold["val"]}
        assert all(c in cases for c in fold["val"])
        assert not {case_map[c]["patient"] for c in fold["train"]} & val_patients
        assert len(fold["train"]) == 4 * len([c for c in cases if cases[c] not in val_patients])
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.setenv(var, str(tmp_path / "nnunet" / var))
    with pytest.raises(UserError, match="--overwrite"):
        gin_views_dataset(950, 951)


# --- Trainers -----------------------------------------------------------------------------------

ROBUSTNESS = ["nnUNetTrainerIQDA", "nnUNetTrainerDiceFocalIQDA", "nnUNetTrainerMaskVariants",
              "nnUNetTrainerDiceFocalMaskVariants", "nnUNetTrainerTversky", "nnUNetTrainerCIBTversky"]


@pytest.fixture(scope="module")
def cpu_plans(tiny_plans):
    from mslesseg_nnunet.cpu_plans import make_cpu_plans

    plans = tiny_plans["nnUNetPlans"]
    dataset = json.loads((plans.parents[2] / "nnUNet_raw" / plans.parent.name / "dataset.json").read_text())
    return make_cpu_plans(json.loads(plans.read_text()), "3d_fullres", "nnUNetPlansCPU",
                          target_patch=(24, 24, 24)), dataset


def training_batch(trainer, rng):
    """Two samples through the trainer's own training transforms, collated as nnU-Net's loader does."""
    rotation, dummy_2d, initial_patch, mirror = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    transforms = trainer.get_training_transforms(
        trainer.configuration_manager.patch_size, rotation, trainer._get_deep_supervision_scales(), mirror,
        dummy_2d, use_mask_for_norm=trainer.configuration_manager.use_mask_for_norm, is_cascaded=False,
        foreground_labels=trainer.label_manager.foreground_labels, regions=None, ignore_label=None)
    samples = []
    for _ in range(2):
        label = np.zeros(initial_patch, np.int16)
        centre = np.array(initial_patch) // 2
        label[tuple(slice(c - 3, c + 3) for c in centre)] = 1
        image = rng.normal(size=(1, *initial_patch)) + 3 * label
        samples.append(transforms(image=torch.as_tensor(image, dtype=torch.float32),
                                  segmentation=torch.as_tensor(label)[None]))
    return transforms, {"data": torch.stack([s["image"] for s in samples]),
                        "target": [torch.stack([s["segmentation"][i] for s in samples])
                                   for i in range(len(samples[0]["segmentation"]))]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ROBUSTNESS)
def test_trainer_runs_a_training_step_through_its_transforms(cpu_plans, name, tmp_path, monkeypatch):
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    from mslesseg_nnunet.trainer_catalog import trainer_classes

    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    plans, dataset = cpu_plans
    classes = trainer_classes()
    assert f"{name}Short" in classes
    torch.manual_seed(0)
    trainer = classes[name]({**plans, "continue_training": False}, "3d_fullres", 0, dataset,
                            torch.device("cpu"))
    trainer.preprocessed_dataset_folder = str(tmp_path)  # read only for the dataset format
    (tmp_path / "case.b2nd").touch()
    trainer.initialize()
    transforms, batch = training_batch(trainer, np.random.default_rng(0))
    after_spatial = transforms.transforms[[type(t) for t in transforms.transforms].index(SpatialTransform) + 1]
    if "IQDA" in name:
        assert isinstance(after_spatial.transform, IQDATransform)
    if "MaskVariants" in name:
        assert isinstance(after_spatial.transform, LesionMaskVariantTransform)
    if "Tversky" in name:
        compound = trainer.loss.segmentation_loss if "CIB" in name else trainer.loss
        assert isinstance(compound.loss.dc, TverskyLoss)  # inside nnU-Net's deep supervision
    assert np.isfinite(trainer.train_step(batch)["loss"])


def test_mask_variants_refuse_distance_labels(cpu_plans, tmp_path, monkeypatch):
    from mslesseg_nnunet.trainers.mslesseg_robustness_trainers import nnUNetTrainerMaskVariants

    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    plans, dataset = cpu_plans
    with pytest.raises(ValueError, match="dbl"):
        nnUNetTrainerMaskVariants({**plans, "continue_training": False}, "3d_fullres", 0,
                                  {**dataset, "labelling": {"kind": "dbl"}}, torch.device("cpu"))
