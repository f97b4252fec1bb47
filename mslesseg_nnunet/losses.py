"""Dice + Focal loss for nnU-Net trainers (label-based training, not regions).

The compound loss reuses nnU-Net's ``DC_and_CE_loss`` forward pass with the
cross-entropy term replaced by a focal term, so ``batch_dice``, the ignore
label and the 1:1 weighting behave exactly as in nnU-Net's default loss.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from torch import nn


class FocalLoss(nn.Module):
    """Multi-class focal loss on logits (Lin et al. 2017).

    ``loss = mean over voxels of -alpha[t] * (1 - p_t) ** gamma * log(p_t)``
    with ``p_t`` the softmax probability of the target class ``t``. Voxels
    labelled ``ignore_index`` are left out of the mean.

    Parameters
    ----------
    gamma : float
        Focusing parameter; 0 gives (alpha-weighted) cross-entropy.
    alpha : sequence of float, optional
        One weight per class, background included. ``None`` weights all classes 1.
    ignore_index : int, optional
        Target value whose voxels do not contribute.
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | None = None,
                 ignore_index: int | None = None):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of ``logits`` (B, C, ...) against integer labels (B, ...) or (B, 1, ...)."""
        if target.ndim == logits.ndim:
            target = target[:, 0]
        target = target.long()
        valid = None if self.ignore_index is None else target != self.ignore_index
        if valid is not None:
            target = torch.where(valid, target, 0)
        log_p = torch.log_softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
        # At p_t = 1, (1 - p_t) ** gamma has an infinite derivative for gamma < 1: clamping
        # (zero gradient below the floor) keeps saturated voxels' gradients at their limit, 0.
        one_minus_p = (1.0 - log_p.exp()).clamp_min(torch.finfo(torch.float32).tiny)
        loss = -(one_minus_p ** self.gamma) * log_p
        if self.alpha is not None:
            loss = loss * self._class_weights(logits.shape[1], logits.device)[target]
        if valid is None:
            return loss.mean()
        return (loss * valid).sum() / valid.sum().clamp_min(1)

    def _class_weights(self, num_classes: int, device: torch.device) -> torch.Tensor:
        if self.alpha.numel() != num_classes:
            raise ValueError(f"focal loss alpha has {self.alpha.numel()} weights but the network "
                             f"predicts {num_classes} classes (background included)")
        return self.alpha.to(device)

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        return f"gamma={self.gamma}, alpha={alpha}, ignore_index={self.ignore_index}"


class DiceFocalLoss(DC_and_CE_loss):
    """``weight_dice * soft Dice + weight_focal * focal``, nnU-Net's way.

    Same arguments and handling as ``DC_and_CE_loss`` (Dice without background,
    ``batch_dice``, ignore label masked in both terms, focal term skipped when a
    patch is entirely ignored); the cross-entropy member ``ce`` is a
    :class:`FocalLoss`.
    """

    def __init__(self, soft_dice_kwargs: dict, gamma: float = 2.0,
                 alpha: Sequence[float] | None = None, weight_focal: float = 1.0,
                 weight_dice: float = 1.0, ignore_label: int | None = None,
                 dice_class=MemoryEfficientSoftDiceLoss):
        super().__init__(soft_dice_kwargs, {}, weight_ce=weight_focal, weight_dice=weight_dice,
                         ignore_label=ignore_label, dice_class=dice_class)
        self.ce = FocalLoss(gamma=gamma, alpha=alpha, ignore_index=ignore_label)


def deep_supervision_weights(num_outputs: int, ddp_without_compile: bool = False) -> np.ndarray:
    """nnU-Net's deep-supervision weights: halving per level, lowest output off, summing to 1.

    Under DDP without ``torch.compile`` the lowest output keeps a tiny weight
    (1e-6) instead of 0, as nnU-Net does, so that DDP sees every parameter used.
    """
    weights = np.array([1 / (2 ** i) for i in range(num_outputs)])
    weights[-1] = 1e-6 if ddp_without_compile else 0
    return weights / weights.sum()
