"""U-Mamba (Ma et al., arXiv 2401.04722): residual U-Nets with Mamba layers.

- UMambaBot: one Mamba layer on the bottleneck (the deepest encoder output,
  which is also the decoder's input).
- UMambaEnc: a Mamba layer after every encoder stage, as in the paper; on a
  stage whose feature map (for the plans' patch size) has no more voxels than
  channels, the channels are the tokens (U-Mamba's ``channel_token``).
- UMambaEncCapped, a named CPU choice: UMambaEnc without the Mamba layers of
  stages above :data:`UMAMBA_ENC_MAX_TOKENS` voxels (the highest resolutions,
  where the pure-PyTorch scan is slowest).

The encoder is nnU-Net's residual encoder (block counts from the plans:
``n_blocks_per_stage`` of residual presets, ``n_conv_per_stage`` of plain
plans), the decoder nnU-Net's U-Net decoder.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mslesseg_nnunet.networks.mamba import ChannelMambaLayer, MambaLayer
from mslesseg_nnunet.networks.plans import (
    UNetHyperParameters,
    build_decoder,
    build_encoder,
    initialize_unet,
)

UMAMBA_ENC_MAX_TOKENS = 16_384
VOXEL_TOKENS, CHANNEL_TOKENS = "voxels", "channels"


class MambaResidualEncoder(nn.Module):
    """nnU-Net residual encoder with an optional Mamba layer after each stage.

    ``mamba_stages``: per stage ``None`` (no Mamba), ``"voxels"`` or
    ``"channels"`` (the tokens). nnU-Net's decoder is built on the wrapped
    ``encoder`` (it reads its channels, strides and ops).
    """

    def __init__(self, hp: UNetHyperParameters, input_channels: int, mamba_stages: list[str | None]):
        super().__init__()
        if len(mamba_stages) != hp.n_stages:
            raise ValueError(f"mamba_stages needs {hp.n_stages} entries, got {len(mamba_stages)}")
        self.encoder = build_encoder(hp, input_channels, residual=True)
        self.mamba = nn.ModuleList(_mamba_layer(tokens, f, math.prod(size)) for tokens, f, size
                                   in zip(mamba_stages, hp.features_per_stage, hp.feature_map_sizes()))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.encoder.stem(x)
        skips = []
        for stage, mamba in zip(self.encoder.stages, self.mamba):
            x = mamba(stage(x))
            skips.append(x)
        return skips


class UMamba(nn.Module):
    """Residual U-Net with Mamba layers after the encoder stages given in ``mamba_stages``."""

    def __init__(self, hp: UNetHyperParameters, input_channels: int, num_classes: int,
                 mamba_stages: list[str | None], deep_supervision: bool = True):
        super().__init__()
        self.encoder = MambaResidualEncoder(hp, input_channels, mamba_stages)
        self.decoder = build_decoder(self.encoder.encoder, hp, num_classes, deep_supervision)

    def forward(self, x: torch.Tensor):
        return self.decoder(self.encoder(x))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        initialize_unet(module)


def _mamba_layer(tokens: str | None, channels: int, voxels: int) -> nn.Module:
    if tokens is None:
        return nn.Identity()
    return ChannelMambaLayer(voxels) if tokens == CHANNEL_TOKENS else MambaLayer(channels)


def bottleneck_stages(hp: UNetHyperParameters) -> list[str | None]:
    """UMambaBot: Mamba over the voxels of the deepest stage only."""
    return [None] * (hp.n_stages - 1) + [VOXEL_TOKENS]


def encoder_stages(hp: UNetHyperParameters, max_tokens: int | None = None) -> list[str | None]:
    """UMambaEnc: Mamba after every stage (``max_tokens``: only stages of at most that many
    voxels); channel tokens where a stage has no more voxels than channels, as U-Mamba."""
    stages = []
    for channels, size in zip(hp.features_per_stage, hp.feature_map_sizes()):
        voxels = math.prod(size)
        if max_tokens is not None and voxels > max_tokens:
            stages.append(None)
        else:
            stages.append(CHANNEL_TOKENS if voxels <= channels else VOXEL_TOKENS)
    return stages
