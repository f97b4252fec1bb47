"""Calibrated Inter-patch Blending (CIB) heads and the Dice they learn to predict.

Ye, Dao et al., "New Multiple Sclerosis Lesion Segmentation via Calibrated
Inter-patch Blending", MICCAI 2025. Two small heads are attached to a U-Net
built from nnU-Net plans (plain, residual-encoder or MSCSA: any network with
``encoder`` returning its skips and ``decoder.stages``):

- patch head: deepest encoder features, global average and max pooled, layer norm, linear,
  sigmoid: the predicted Dice of the window's segmentation (the max, because
  instance normalisation leaves a feature's window average nearly constant);
- grid head: one intermediate decoder stage, 3x3x3 convolution, average pooled
  to 2x2x2 cells, layer norm, LeakyReLU, linear, sigmoid: the predicted Dice of each cell
  (the norms keep the sigmoids out of saturation; docs/cib.md).

The heads read the features through forward hooks and keep their last outputs
in ``network.cib_heads.patch_dice`` (B,) and ``.grid_dice`` (B, 2, 2, 2); the
network itself still returns logits only, so stock nnU-Net trains, validates
and predicts with it unchanged (the heads are in the state dict).

Dice of a window or cell: hard Dice of lesion (any foreground label) between
the argmax prediction and the label; 1 when both are empty, so correctly empty
regions are trusted.
"""
from __future__ import annotations

import torch
from torch import nn

GRID = 2
GRID_HIDDEN = 8


class CIBHeads(nn.Module):
    """Patch and grid Dice-predicting heads (14-28 K parameters on nnU-Net's U-Nets)."""

    def __init__(self, conv_op, deep_channels: int, grid_channels: int, hidden: int = GRID_HIDDEN):
        super().__init__()
        ndim = 3 if conv_op is nn.Conv3d else 2
        self.patch_norm = nn.LayerNorm(2 * deep_channels)
        self.patch = nn.Linear(2 * deep_channels, 1)
        self.grid_conv = conv_op(grid_channels, hidden, 3, padding=1)
        self.grid_pool = (nn.AdaptiveAvgPool3d if ndim == 3 else nn.AdaptiveAvgPool2d)(GRID)
        self.grid_norm = nn.LayerNorm(hidden)
        self.grid_linear = nn.Linear(hidden, 1)
        self.patch_dice: torch.Tensor | None = None
        self.grid_dice: torch.Tensor | None = None

    def read_deepest(self, features: torch.Tensor) -> None:
        flat = features.flatten(2)
        pooled = torch.cat([flat.mean(2), flat.amax(2)], 1)
        self.patch_dice = torch.sigmoid(self.patch(self.patch_norm(pooled)))[:, 0]

    def read_decoder(self, features: torch.Tensor) -> None:
        cells = self.grid_pool(self.grid_conv(features)).movedim(1, -1)
        self.grid_dice = torch.sigmoid(self.grid_linear(nn.functional.leaky_relu(self.grid_norm(cells))))[..., 0]


def grid_stage(patch_size, strides) -> int:
    """Index into ``decoder.stages`` of the grid head's features: the middle decoder stage,
    or the next higher-resolution one until every axis is even (cells align with the window)."""
    sizes, size = [], list(patch_size)
    for stride in strides:
        size = [s // k for s, k in zip(size, stride)]
        sizes.append(size)
    n_decoder = len(strides) - 1
    for k in range(n_decoder // 2, n_decoder):
        if all(s >= GRID and s % GRID == 0 for s in sizes[n_decoder - 1 - k]):
            return k
    return n_decoder - 1


def attach_cib_heads(network: nn.Module, configuration_manager) -> nn.Module:
    """Add ``network.cib_heads`` and the hooks that feed it; returns ``network``."""
    encoder, decoder = network.encoder, network.decoder
    channels = list(encoder.output_channels)
    k = grid_stage(configuration_manager.patch_size, configuration_manager.pool_op_kernel_sizes)
    heads = CIBHeads(encoder.conv_op, channels[-1], channels[-(k + 2)])
    network.cib_heads = heads
    encoder.register_forward_hook(lambda module, inputs, skips: heads.read_deepest(skips[-1]))
    decoder.stages[k].register_forward_hook(lambda module, inputs, out: heads.read_decoder(out))
    return network


def cib_heads_of(network: nn.Module) -> CIBHeads | None:
    """The heads of a (possibly DDP- or compile-wrapped) network, or None."""
    network = getattr(network, "module", network)
    network = getattr(network, "_orig_mod", network)
    return getattr(network, "cib_heads", None)


def cell_sums(x: torch.Tensor) -> torch.Tensor:
    """(B, *spatial) -> (B, 2, 2[, 2]) sums over the cells (each axis split at size // 2)."""
    for axis in range(1, x.ndim):
        half = x.shape[axis] // 2
        x = torch.stack([x.narrow(axis, 0, half).sum(axis),
                         x.narrow(axis, half, x.shape[axis] - half).sum(axis)], dim=axis)
    return x


def expand_cells(cells: torch.Tensor, shape) -> torch.Tensor:
    """(2, 2[, 2]) cell values -> a map of ``shape`` (the window), each cell filled with its value."""
    for axis, size in enumerate(shape):
        repeats = torch.tensor([size // 2, size - size // 2], device=cells.device)
        cells = cells.repeat_interleave(repeats, dim=axis)
    return cells


def dice_targets(logits: torch.Tensor, labels: torch.Tensor,
                 ignore_label: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard lesion Dice of each window and each of its cells, 1 where both are empty.

    ``logits`` (B, C, *spatial), ``labels`` (B, 1, *spatial) label map; voxels
    with ``ignore_label`` count for neither. Returns (B,) and (B, 2, 2[, 2]).
    """
    labels = labels[:, 0]
    predicted = logits.argmax(1) > 0
    lesion = labels > 0
    if ignore_label is not None:
        valid = labels != ignore_label
        predicted, lesion = predicted & valid, lesion & valid
    sums = [cell_sums(v.float()) for v in (predicted & lesion, predicted, lesion)]
    patch = [s.flatten(1).sum(1) for s in sums]
    return _dice(*patch), _dice(*sums)


def _dice(overlap: torch.Tensor, predicted: torch.Tensor, lesion: torch.Tensor) -> torch.Tensor:
    total = predicted + lesion
    return torch.where(total > 0, 2 * overlap / total.clamp_min(1), torch.ones_like(total))
