"""CIB training loss: segmentation loss + lambda1 MSE(patch Dice) + lambda2 sum over cells MSE(cell Dice).

Eq. 4-6 of Ye, Dao et al. (MICCAI 2025). The targets are the hard Dice of the
current prediction (highest-resolution output) against the label, window and
cells (``mslesseg_nnunet.networks.cib_heads.dice_targets``), without gradient;
the heads' gradient reaches the backbone (the paper's regularisation).
"""
from __future__ import annotations

import torch
from torch import nn

from mslesseg_nnunet.networks.cib_heads import CIBHeads, dice_targets


class CIBLoss(nn.Module):
    """Wraps nnU-Net's (deep-supervised) segmentation loss; reads the heads' last outputs.

    ``lambda_patch`` and ``lambda_grid`` are set by the trainer every epoch;
    ``last`` holds the detached MSE terms of the last call (for logging).
    """

    def __init__(self, segmentation_loss: nn.Module, heads: CIBHeads, ignore_label: int | None = None):
        super().__init__()
        self.segmentation_loss = segmentation_loss
        self.heads = heads
        self.ignore_label = ignore_label
        self.lambda_patch = 1.0
        self.lambda_grid = 0.0
        self.last: dict[str, float] = {}

    def forward(self, output, target) -> torch.Tensor:
        loss = self.segmentation_loss(output, target)
        logits = output[0] if isinstance(output, (list, tuple)) else output
        labels = target[0] if isinstance(target, (list, tuple)) else target
        with torch.no_grad():
            patch_true, grid_true = dice_targets(logits.detach(), labels, self.ignore_label)
        patch_mse = ((self.heads.patch_dice.float() - patch_true) ** 2).mean()
        grid_mse = ((self.heads.grid_dice.float() - grid_true) ** 2).flatten(1).sum(1).mean()
        self.last = {"patch_mse": patch_mse.item(), "grid_mse": grid_mse.item()}
        return loss + self.lambda_patch * patch_mse + self.lambda_grid * grid_mse
