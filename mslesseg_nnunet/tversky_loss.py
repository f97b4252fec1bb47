"""Tversky loss (Salehi et al., MLMI 2017), as a drop-in for nnU-Net's soft Dice term.

Per class, with soft counts ``TP = sum p g``, ``FP = sum p (1 - g)``, ``FN = sum (1 - p) g``:

    TI = (2 TP + smooth) / (2 TP + 2 alpha FP + 2 beta FN + smooth),   loss = -mean TI

(nnU-Net's sign convention). ``alpha`` weighs false positives, ``beta`` false
negatives; with ``alpha = beta = 0.5`` this is exactly nnU-Net's soft Dice
(``SoftDiceLoss``), smoothing included. Same arguments and handling as
``SoftDiceLoss`` (``batch_dice``, ``do_bg``, loss mask, DDP gathering), so it
goes into ``DC_and_CE_loss(dice_class=TverskyLoss)``.
"""
from __future__ import annotations

from typing import Callable

import torch
from nnunetv2.training.loss.dice import get_tp_fp_fn_tn
from nnunetv2.utilities.ddp_allgather import AllGatherGrad
from torch import nn

# Salehi et al.'s best setting (their Table 1); the CIB paper (seed 003) does not give its values.
DEFAULT_ALPHA = 0.3
DEFAULT_BETA = 0.7


class TverskyLoss(nn.Module):
    """Negative mean Tversky index over classes (and samples unless ``batch_dice``)."""

    def __init__(self, apply_nonlin: Callable | None = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = 1.0, ddp: bool = True, alpha: float = DEFAULT_ALPHA,
                 beta: float = DEFAULT_BETA):
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta <= 0:
            raise ValueError(f"Tversky alpha and beta must be >= 0 and not both 0, got {alpha}, {beta}")
        self.apply_nonlin = apply_nonlin
        self.batch_dice = batch_dice
        self.do_bg = do_bg
        self.smooth = smooth
        self.ddp = ddp
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
        axes = ([0] if self.batch_dice else []) + list(range(2, x.ndim))
        if self.apply_nonlin is not None:
            x = self.apply_nonlin(x)
        tp, fp, fn, _ = get_tp_fp_fn_tn(x, y, axes, loss_mask, False)
        if self.ddp and self.batch_dice:
            tp, fp, fn = (AllGatherGrad.apply(t).sum(0, dtype=torch.float32) for t in (tp, fp, fn))
        index = (2 * tp + self.smooth) / torch.clip(
            2 * tp + 2 * self.alpha * fp + 2 * self.beta * fn + self.smooth, 1e-8)
        if not self.do_bg:
            index = index[1:] if self.batch_dice else index[:, 1:]
        return -index.mean()

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, batch_dice={self.batch_dice}, do_bg={self.do_bg}"
