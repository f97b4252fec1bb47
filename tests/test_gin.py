"""GIN augmentation: shape, untouched segmentation, changed intensities, norm, seeding, trainer wiring."""
from __future__ import annotations

import pytest
import torch

from mslesseg_nnunet.augmentation import GINTransform


def sample(seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(2, 12, 10, 8, generator=g) + 3
    seg = torch.randint(0, 4, (1, 12, 10, 8), generator=g).to(torch.int16)
    return image, seg


def test_gin_keeps_shape_and_segmentation_changes_image():
    image, seg = sample()
    torch.manual_seed(0)
    out = GINTransform()(image=image.clone(), segmentation=seg.clone())
    assert out["image"].shape == image.shape and out["image"].dtype == image.dtype
    assert torch.equal(out["segmentation"], seg)
    assert not torch.allclose(out["image"], image)
    # rescaled to the input's Frobenius norm
    assert torch.linalg.vector_norm(out["image"]).item() == pytest.approx(
        torch.linalg.vector_norm(image).item(), rel=1e-4)


def test_gin_deterministic_under_seed_and_fresh_per_call():
    image, seg = sample()
    torch.manual_seed(5)
    a = GINTransform()(image=image.clone(), segmentation=seg)["image"]
    b = GINTransform()(image=image.clone(), segmentation=seg)["image"]
    torch.manual_seed(5)
    a2 = GINTransform()(image=image.clone(), segmentation=seg)["image"]
    assert torch.equal(a, a2)
    assert not torch.allclose(a, b)


def test_gin_layers_and_kernels():
    image, _ = sample()
    torch.manual_seed(0)
    params = GINTransform(num_layers=4, intermediate_channels=3).get_parameters(image=image)
    shapes = [w.shape for w, _ in params["layers"]]
    assert [s[:2] for s in shapes] == [(3, 2), (3, 3), (3, 3), (2, 3)]
    assert all(s[2:] in {(1, 1, 1), (3, 3, 3)} for s in shapes)
    assert 0 <= params["alpha"] <= 1
    with pytest.raises(ValueError):
        GINTransform(kernel_sizes=(2,))


def test_gin_trainer_adds_transform_after_spatial():
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from batchgeneratorsv2.transforms.utils.random import RandomTransform

    from mslesseg_nnunet.trainers.mslesseg_trainers import nnUNetTrainerGIN

    compose = nnUNetTrainerGIN.get_training_transforms(
        (16, 16, 16), (-0.5, 0.5), None, (0, 1, 2), False)
    kinds = [type(t) for t in compose.transforms]
    i = kinds.index(SpatialTransform)
    gin = compose.transforms[i + 1]
    assert isinstance(gin, RandomTransform) and isinstance(gin.transform, GINTransform)
    assert sum(isinstance(t, RandomTransform) and isinstance(t.transform, GINTransform)
               for t in compose.transforms) == 1
