"""Calibrated Inter-patch Blending (CIB) heads and the Dice they learn to predict.

Ye, Dao et al., "New Multiple Sclerosis Lesion Segmentation via Calibrated
Inter-patch Blending", MICCAI 2025. Two small heads are attached to a U-Net
built from nnU-Net plans (plain, residual-encoder or MSCSA: any network with
``encoder`` returning its skips and ``decoder.stages``):

- patch head: global average and max pooling, layer norm, linear, sigmoid: the
  predicted Dice of the window's segmentation. It reads the full-resolution
  decoder features by default; ``from_encoder=True`` reads the deepest encoder
  features as the paper does (they hardly carry the window's Dice early in
  training: docs/cib.md);
- grid head: full-resolution decoder features (the paper's 7.18 GFLOPs for
  7.35 K parameters put its convolution at full resolution), 3x3x3
  convolution, average and max pooling over each of the 2x2x2 cells, layer
  norm, LeakyReLU, linear, sigmoid: the predicted Dice of each cell (the norms
  keep the sigmoids out of saturation; the max carries small lesions).

The heads read the features through forward hooks and keep their last outputs
in ``network.cib_heads.patch_dice`` (B,) and ``.grid_dice`` (B, 2, 2, 2); the
network itself still returns logits only, so stock nnU-Net trains, validates
and predicts with it unchanged (the heads are in the state dict).

Dice of a window or cell: hard Dice of lesion (any foreground label) between
the argmax prediction and the label; 1 when both are empty, so correctly empty
regions are trusted.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

GRID_HIDDEN = 8


class CIBHeads(nn.Module):
    """Patch and grid Dice-predicting heads (a few K parameters)."""

    def __init__(self, conv_op, patch_channels: int, grid_channels: int, hidden: int = GRID_HIDDEN):
        super().__init__()
        self.patch_norm = nn.LayerNorm(2 * patch_channels)
        self.patch = nn.Linear(2 * patch_channels, 1)
        self.grid_conv = conv_op(grid_channels, hidden, 3, padding=1)
        self.grid_norm = nn.LayerNorm(2 * hidden)
        self.grid_linear = nn.Linear(2 * hidden, 1)
        self.patch_dice: torch.Tensor | None = None
        self.grid_dice: torch.Tensor | None = None

    def read_patch(self, features: torch.Tensor) -> None:
        flat = features.flatten(2)
        pooled = torch.cat([flat.mean(2), flat.amax(2)], 1)
        self.patch_dice = torch.sigmoid(self.patch(self.patch_norm(pooled)))[:, 0]

    def read_grid(self, features: torch.Tensor) -> None:
        cells = pool_cells(self.grid_conv(features)).movedim(1, -1)
        self.grid_dice = torch.sigmoid(self.grid_linear(nn.functional.leaky_relu(self.grid_norm(cells))))[..., 0]


def attach_cib_heads(network: nn.Module, from_encoder: bool = False) -> nn.Module:
    """Add ``network.cib_heads`` and the hooks that feed it; returns ``network``.

    Both heads read the last (full-resolution) decoder stage; with ``from_encoder``
    the patch head reads the deepest encoder stage (the paper's choice).
    """
    encoder, decoder = network.encoder, network.decoder
    full = encoder.output_channels[0]
    heads = CIBHeads(encoder.conv_op, encoder.output_channels[-1] if from_encoder else full, full)
    network.cib_heads = heads
    if from_encoder:  # the encoder returns its skips, the deepest last
        encoder.register_forward_hook(lambda module, inputs, skips: heads.read_patch(skips[-1]))
    else:
        decoder.stages[-1].register_forward_hook(lambda module, inputs, out: heads.read_patch(out))
    decoder.stages[-1].register_forward_hook(lambda module, inputs, out: heads.read_grid(out))
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


def pool_cells(features: torch.Tensor) -> torch.Tensor:
    """(B, C, *spatial) -> (B, 2C, 2, 2[, 2]): each cell's average and max of each channel."""
    halves = [(slice(0, n // 2), slice(n // 2, n)) for n in features.shape[2:]]
    cells = [features[(..., *region)].flatten(2) for region in itertools.product(*halves)]
    pooled = torch.stack([torch.cat([c.mean(2), c.amax(2)], 1) for c in cells], -1)
    return pooled.unflatten(-1, (2,) * len(halves))


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
