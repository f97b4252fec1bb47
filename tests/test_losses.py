"""Dice + Focal loss: hand-computed focal values, alpha, class counts, deep supervision, ignore label."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from mslesseg_nnunet.losses import DiceFocalLoss, FocalLoss, deep_supervision_weights

DICE_KWARGS = {"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}


def hand_focal(logits, target, gamma, alpha=None):
    """Focal loss written voxel by voxel from the definition."""
    terms = []
    for b in range(logits.shape[0]):
        for v in range(logits.shape[2]):
            z = [float(logits[b, c, v]) for c in range(logits.shape[1])]
            t = int(target[b, 0, v])
            p = math.exp(z[t]) / sum(math.exp(zc) for zc in z)
            a = 1.0 if alpha is None else alpha[t]
            terms.append(-a * (1 - p) ** gamma * math.log(p))
    return sum(terms) / len(terms)


@pytest.fixture
def small():
    logits = torch.tensor([[[2.0, -1.0, 0.5], [0.0, 1.5, 0.2], [-0.5, 0.3, 1.0]]])  # (1, 3, 3)
    target = torch.tensor([[[0, 1, 2]]])  # (1, 1, 3)
    return logits, target


def test_focal_equals_hand_computation(small):
    logits, target = small
    got = FocalLoss(gamma=2.0)(logits, target).item()
    assert got == pytest.approx(hand_focal(logits, target, 2.0), rel=1e-6)
    # gamma 0 is cross-entropy
    ce = torch.nn.functional.cross_entropy(logits, target[:, 0]).item()
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(ce, rel=1e-6)


def test_alpha_is_applied(small):
    logits, target = small
    alpha = [0.25, 1.0, 3.0]
    plain = FocalLoss(gamma=2.0)(logits, target).item()
    weighted = FocalLoss(gamma=2.0, alpha=alpha)(logits, target).item()
    assert weighted == pytest.approx(hand_focal(logits, target, 2.0, alpha), rel=1e-6)
    assert weighted != pytest.approx(plain, rel=1e-3)


def test_alpha_length_must_match_classes(small):
    logits, target = small
    with pytest.raises(ValueError, match="alpha has 2 weights"):
        FocalLoss(alpha=[1.0, 2.0])(logits, target)


def test_ignore_label_excluded_from_focal(small):
    logits, target = small
    ignored = target.clone()
    ignored[0, 0, 2] = 7
    got = FocalLoss(ignore_index=7)(logits, ignored).item()
    assert got == pytest.approx(hand_focal(logits[..., :2], target[..., :2], 2.0), rel=1e-6)


@pytest.mark.parametrize("num_classes", [2, 3, 4])  # binary, DBL (2 fg), MSL (3 fg)
@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_focal_is_dice_plus_focal(num_classes, batch_dice):
    torch.manual_seed(0)
    logits = torch.randn(2, num_classes, 6, 5, 4, requires_grad=True)
    target = torch.randint(0, num_classes, (2, 1, 6, 5, 4))
    kwargs = {**DICE_KWARGS, "batch_dice": batch_dice}
    loss = DiceFocalLoss(kwargs)
    dice = MemoryEfficientSoftDiceLoss(apply_nonlin=lambda x: torch.softmax(x, 1), **kwargs)
    expected = dice(logits, target) + FocalLoss(2.0)(logits, target)
    value = loss(logits, target)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_dice_focal_ignore_label_like_nnunet():
    """With gamma 0 the focal term is CE, so the loss must equal nnU-Net's DC_and_CE_loss."""
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 5, 5, 5)
    target = torch.randint(0, 3, (2, 1, 5, 5, 5))
    target[:, :, :2] = 3  # ignore label
    ours = DiceFocalLoss(DICE_KWARGS, gamma=0.0, ignore_label=3)(logits, target)
    theirs = DC_and_CE_loss(DICE_KWARGS, {}, ignore_label=3,
                            dice_class=MemoryEfficientSoftDiceLoss)(logits, target)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    all_ignored = torch.full_like(target, 3)
    assert torch.isfinite(DiceFocalLoss(DICE_KWARGS, ignore_label=3)(logits, all_ignored))


def test_dice_focal_in_deep_supervision_wrapper():
    torch.manual_seed(2)
    weights = deep_supervision_weights(3)
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3, 0])
    loss = DeepSupervisionWrapper(DiceFocalLoss(DICE_KWARGS), weights)
    shapes = [(8, 8, 8), (4, 4, 4), (2, 2, 2)]
    outputs = [torch.randn(2, 4, *s) for s in shapes]
    targets = [torch.randint(0, 4, (2, 1, *s)) for s in shapes]
    single = DiceFocalLoss(DICE_KWARGS)
    expected = sum(w * single(o, t) for w, o, t in zip(weights[:2], outputs, targets))
    assert loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-5)


def test_trainer_rejects_regions():
    from mslesseg_nnunet.trainer_mixins import DiceFocalLossMixin

    class FakeLabels:
        has_regions = True

    trainer = DiceFocalLossMixin()
    trainer.label_manager = FakeLabels()
    with pytest.raises(ValueError, match="regions"):
        trainer._build_loss()


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9])
def test_focal_gradients_finite_when_probability_saturates(gamma):
    """0 < gamma < 1: d(1 - p)^gamma / dp is infinite at p = 1; saturated voxels must give 0, not NaN."""
    logits = torch.tensor([[[80.0, -80.0, 0.3], [-80.0, 80.0, -0.2]]], requires_grad=True)  # (1, 2, 3)
    target = torch.tensor([[0, 1, 1]])
    FocalLoss(gamma=gamma)(logits, target).backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.all(logits.grad[..., :2] == 0)  # saturated and correct: no gradient
    # the unsaturated voxel's gradient equals the hand-derived one (autograd on the formula, p < 1)
    x = logits.detach()[..., 2].clone().requires_grad_()
    log_p = torch.log_softmax(x, dim=1)[0, 1]
    (-((1 - log_p.exp()) ** gamma) * log_p / 3).backward()
    assert torch.allclose(logits.grad[..., 2], x.grad, atol=1e-7)
