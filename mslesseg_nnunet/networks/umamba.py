"""U-Mamba (Ma et al., arXiv 2401.04722): residual U-Nets with Mamba layers.

- UMambaBot: one Mamba layer on the bottleneck (the deepest encoder output,
  which is also the decoder's input).
- UMambaEnc: a Mamba layer after every encoder stage whose feature map (for
  the plans' patch size) has at most ``max_tokens`` voxels, so that CPU
  training stays feasible; ``max_tokens=None`` puts one after every stage as
  in the paper. The default (:data:`UMAMBA_ENC_MAX_TOKENS`) skips only the
  largest, full-resolution maps.

The encoder is nnU-Net's residual encoder (block counts from the plans:
``n_blocks_per_stage`` of residual presets, ``n_conv_per_stage`` of plain
plans), the decoder nnU-Net's U-Net decoder.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mslesseg_nnunet.networks.mamba import MambaLayer
from mslesseg_nnunet.networks.plans import (
    UNetHyperParameters,
    build_decoder,
    build_encoder,
    initialize_unet,
)

UMAMBA_ENC_MAX_TOKENS = 16_384


class MambaResidualEncoder(nn.Module):
    """nnU-Net residual encoder with an optional Mamba layer after each stage.

    nnU-Net's decoder is built on the wrapped ``encoder`` (it reads its
    channels, strides and ops).
    """

    def __init__(self, hp: UNetHyperParameters, input_channels: int, mamba_stages: list[bool]):
        super().__init__()
        if len(mamba_stages) != hp.n_stages:
            raise ValueError(f"mamba_stages needs {hp.n_stages} entries, got {len(mamba_stages)}")
        self.encoder = build_encoder(hp, input_channels, residual=True)
        self.mamba = nn.ModuleList(MambaLayer(f) if use else nn.Identity()
                                   for f, use in zip(hp.features_per_stage, mamba_stages))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.encoder.stem(x)
        skips = []
        for stage, mamba in zip(self.encoder.stages, self.mamba):
            x = mamba(stage(x))
            skips.append(x)
        return skips


class UMamba(nn.Module):
    """Residual U-Net with Mamba layers after the encoder stages flagged in ``mamba_stages``."""

    def __init__(self, hp: UNetHyperParameters, input_channels: int, num_classes: int,
                 mamba_stages: list[bool], deep_supervision: bool = True):
        super().__init__()
        self.encoder = MambaResidualEncoder(hp, input_channels, mamba_stages)
        self.decoder = build_decoder(self.encoder.encoder, hp, num_classes, deep_supervision)

    def forward(self, x: torch.Tensor):
        return self.decoder(self.encoder(x))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        initialize_unet(module)


def bottleneck_stages(hp: UNetHyperParameters) -> list[bool]:
    """UMambaBot: Mamba on the deepest stage only."""
    return [False] * (hp.n_stages - 1) + [True]


def encoder_stages(hp: UNetHyperParameters, max_tokens: int | None = UMAMBA_ENC_MAX_TOKENS) -> list[bool]:
    """UMambaEnc: Mamba on every stage with at most ``max_tokens`` voxels (all if None)."""
    return [max_tokens is None or math.prod(size) <= max_tokens for size in hp.feature_map_sizes()]
