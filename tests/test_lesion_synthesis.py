"""Lesion synthesis on hand-made patches: label where the intensity changed, contrast ranges,
MSSEG-2 pairs, the real:synthetic ratio, the trainer's augmentation pipeline and a training step."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_robustness import cpu_plans, training_batch  # noqa: F401  (cpu_plans: a pytest fixture)

from mslesseg_nnunet.lesion_synthesis import (CONTRAST_RANGES, LesionSynthesisTransform, channel_contrasts,
                                              draw_lesions, normal_tissue, paste)
from mslesseg_nnunet.trainers.mslesseg_lesionsynth_trainers import nnUNetTrainerLesionSynth

LEVELS = (100.0, 120.0)            # FLAIR, T1 tissue; background 0
# Inside a lesion the renderer's signal is patchy: 0.92 + 0.08 g, g a smooth field with |g| <= 10 ** 0.5.
PATCHY = (0.92 - 0.08 * 10 ** 0.5, 0.92 + 0.08 * 10 ** 0.5)


def patch(shape=(40, 40, 40), levels=LEVELS, margin=4, noise=0.0):
    """A (C, *shape) image: tissue in a box (``levels`` plus uniform noise of amplitude
    ``noise``), background 0 around it; empty label."""
    image = np.zeros((len(levels), *shape), np.float32)
    inner = tuple(slice(margin, n - margin) for n in shape)
    rng = np.random.default_rng(0)
    for c, level in enumerate(levels):
        image[c][inner] = level + rng.uniform(-noise, noise, image[c][inner].shape)
    return image, np.zeros((1, *shape), np.int16)


def one_lesion(seed, volume=(150.0, 150.0), names=("FLAIR", "T1")):
    image, seg = patch()
    contrasts = channel_contrasts(names)
    tissue = normal_tissue(image, seg, 0, (20, 80))
    [lesion] = draw_lesions(np.random.default_rng(seed), tissue, 1, volume, (1.0, 2.0), contrasts)
    before = image.copy()
    paste(image, seg, [lesion], tissue, 1)
    return before, image, seg[0] == 1, lesion.contrast


@pytest.mark.parametrize("seed", range(3))
def test_label_is_set_where_the_intensity_changed(seed):
    before, after, label, ratios = one_lesion(seed)
    delta = after - before
    assert label.sum() > 20
    changed = delta[0] > 0
    assert np.all(changed[label])                            # every labelled voxel is brighter on FLAIR
    full = delta[0] / ((ratios[0] - 1.0) * LEVELS[0])        # 1 = the lesion's full contrast
    assert not np.any(full[~label] >= 0.5)                   # every voxel changed by half or more is labelled
    assert np.all(delta[0] >= 0) and np.all(np.sign(delta[1][changed]) == np.sign(ratios[1] - 1.0))
    assert np.array_equal(changed, delta[1] != 0)            # both channels change on the same voxels
    assert not np.any(changed & (before[0] == 0))            # never in the background


def test_contrast_ratios_span_the_declared_ranges():
    measured = {0: [], 1: []}
    for seed in range(30):
        before, after, label, _ = one_lesion(seed, volume=(300.0, 300.0))
        for c, level in enumerate(LEVELS):
            delta = (after[c] - before[c]).ravel()
            measured[c].append(1.0 + delta[np.argmax(np.abs(delta))] / level)   # the lesion's peak
    for c, modality in enumerate(("FLAIR", "T1")):
        lo, hi = CONTRAST_RANGES[modality]
        values = np.array(measured[c])
        bounds = [1 + (r - 1) * s for r in (lo, hi) for s in PATCHY]
        assert values.min() >= min(bounds) - 1e-4 and values.max() <= max(bounds) + 1e-4
        assert values.min() < lo + 0.25 * (hi - lo) and values.max() > hi - 0.25 * (hi - lo)   # wide


def test_msseg2_pairs_get_new_lesions_in_time02_only():
    image, seg = patch(levels=(100.0, 100.0))
    transform = LesionSynthesisTransform(channel_contrasts(["time01", "time02"]), probability=1.0,
                                         volume=(50.0, 300.0))
    np.random.seed(3)
    out = transform(image=torch.from_numpy(image.copy()), segmentation=torch.from_numpy(seg.copy()))
    new_image, new_label = out["image"].numpy(), out["segmentation"].numpy()
    assert np.array_equal(new_image[0], image[0])
    assert np.all(new_image[1] >= image[1]) and new_label.sum() > 0
    assert np.all(new_image[1][new_label[0] == 1] > image[1][new_label[0] == 1])


def test_unknown_channel_and_nothing_to_paste_are_refused():
    with pytest.raises(ValueError, match="'ADC'"):
        channel_contrasts(["FLAIR", "ADC"])
    with pytest.raises(ValueError, match="no channel"):
        channel_contrasts(["time01"])
    assert channel_contrasts(["flair", "T2", "t1w"]) == (CONTRAST_RANGES["FLAIR"], CONTRAST_RANGES["T2"],
                                                         CONTRAST_RANGES["T1"])


def trainer(cls=nnUNetTrainerLesionSynth, labels=None, channels=("FLAIR", "T1"), spacing=(1.0, 1.0, 1.0)):
    """A trainer instance with only what its augmentation reads (no plans, no network)."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    instance = cls.__new__(cls)
    instance.label_manager = LabelManager(labels or {"background": 0, "lesion": 1}, None)
    instance.dataset_json = {"channel_names": {str(i): n for i, n in enumerate(channels)}}
    instance.configuration_manager = SimpleNamespace(spacing=list(spacing))
    return instance


@pytest.mark.parametrize("ratio,expected", [((1, 3), 0.75), ((1, 1), 0.5)])
def test_ratio_gives_the_fraction_of_synthetic_samples(ratio, expected):
    cls = type("Trainer", (nnUNetTrainerLesionSynth,), {"lesion_synth_ratio": ratio,
                                                        "lesion_synth_volume_mm3": (20.0, 40.0)})
    transform = trainer(cls).lesion_synthesis_transform()
    assert transform.probability == expected
    image, seg = patch((14, 14, 14), margin=2)
    np.random.seed(0)
    n = 300
    outputs = (transform(image=torch.from_numpy(image.copy()), segmentation=torch.from_numpy(seg.copy()))
               for _ in range(n))
    changed = sum(not np.array_equal(out["image"].numpy(), image) for out in outputs)
    assert abs(changed / n - expected) < 3 * np.sqrt(expected * (1 - expected) / n)


def test_trainer_pipeline_pastes_lesions_after_the_spatial_transform():
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    cls = type("Trainer", (nnUNetTrainerLesionSynth,), {"lesion_synth_ratio": (0, 1)})
    instance = trainer(cls, spacing=(0.5, 0.5, 0.5))
    assert instance.lesion_synthesis_transform().volume == (3.0 * 8, 1500.0 * 8)   # mm3 -> voxels
    compose = instance.get_training_transforms((32, 32, 32), (-0.5, 0.5), None, (0, 1, 2), False,
                                               foreground_labels=[1])
    kinds = [type(t) for t in compose.transforms]
    assert isinstance(compose.transforms[kinds.index(SpatialTransform) + 1], LesionSynthesisTransform)
    image, seg = patch(noise=1.0)
    np.random.seed(0)
    torch.manual_seed(0)
    out = compose(image=torch.from_numpy(image), segmentation=torch.from_numpy(seg))
    assert out["segmentation"].shape == (1, 32, 32, 32) and out["segmentation"].max() == 1
    with pytest.raises(ValueError, match="one lesion label"):
        trainer(labels={"background": 0, "small": 1, "large": 2}).lesion_synthesis_transform()


def test_two_dimensional_samples():
    image, seg = patch((40, 40, 1), margin=0, noise=1.0)
    transform = LesionSynthesisTransform(channel_contrasts(["FLAIR", "T1"]), probability=1.0,
                                         volume=(100.0, 300.0))
    np.random.seed(1)
    out = transform(image=torch.from_numpy(image[..., 0].copy()),
                    segmentation=torch.from_numpy(seg[..., 0].copy()))
    assert out["image"].shape == (2, 40, 40) and out["segmentation"].sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nnUNetTrainerLesionSynth", "nnUNetTrainerLesionSynthDiceFocal"])
def test_trainer_runs_a_training_step_through_its_transforms(cpu_plans, name, tmp_path, monkeypatch):
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    from mslesseg_nnunet.trainer_catalog import trainer_classes

    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    plans, dataset = cpu_plans
    classes = trainer_classes()
    assert f"{name}Short" in classes
    cls = type(name, (classes[name],), {"lesion_synth_ratio": (0, 1)})     # every sample synthetic
    torch.manual_seed(0)
    np.random.seed(0)
    trainer = cls({**plans, "continue_training": False}, "3d_fullres", 0, dataset, torch.device("cpu"))
    trainer.preprocessed_dataset_folder = str(tmp_path)  # read only for the dataset format
    (tmp_path / "case.b2nd").touch()
    trainer.initialize()
    transforms, batch = training_batch(trainer, np.random.default_rng(0))
    kinds = [type(t) for t in transforms.transforms]
    assert isinstance(transforms.transforms[kinds.index(SpatialTransform) + 1], LesionSynthesisTransform)
    assert np.isfinite(trainer.train_step(batch)["loss"])
