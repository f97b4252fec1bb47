"""LightM-UNet (Liao et al., arXiv 2403.05246): a lightweight Mamba U-Net.

Encoder: a 3x3 stem conv, then one level per plans stage; level 0 holds
``blocks_down[0]`` residual Vision-Mamba blocks at full resolution, each later
level first widens the channels with a Residual Vision Mamba (RVM) layer and
max-pools by the plans' stride, then holds ``blocks_down[i]`` residual
blocks. Decoder: per level a 1x1 conv, (tri)linear upsampling to the skip's
size, addition of the skip and ``blocks_up[i]`` residual depthwise-conv
blocks; a norm-nonlin-1x1 head. The reference configuration (init filters
32, ``blocks_down`` [1, 2, 2, 4], ``blocks_up`` [1, 1, 1]) is what 4-stage
plans give; plans with other depths get [1, 2, ..., 2, 4] and [1, ...].
Channels per level are the plans' ``features_per_stage``. Norm and
non-linearity follow the plans (the original uses group norm and ReLU).

The paper trains without deep supervision; the switch
``decoder.deep_supervision`` still adds 1x1 heads on every decoder level
(highest resolution first), matching nnU-Net's deep-supervision scales.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mslesseg_nnunet.networks.mamba import MambaLayer
from mslesseg_nnunet.networks.plans import UNetHyperParameters, initialize_unet

REFERENCE_BLOCKS_DOWN = (1, 2, 2, 4)


def default_blocks(n_stages: int) -> tuple[list[int], list[int]]:
    """(blocks_down, blocks_up) of the reference configuration, generalised to ``n_stages``."""
    if n_stages < 2:
        raise ValueError(f"LightM-UNet needs at least 2 stages, the plans have {n_stages}")
    return [1] + [2] * (n_stages - 2) + [4], [1] * (n_stages - 1)


class ResidualVisionMamba(nn.Module):
    """RVM layer: ``proj(LN(Mamba(LN(x)) + s * x))`` on the voxel tokens, s learnable per channel."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.mamba = MambaLayer(in_channels)
        self.skip_scale = nn.Parameter(torch.ones(in_channels))
        self.norm = nn.LayerNorm(in_channels)
        self.proj = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, *spatial = x.shape
        scale = self.skip_scale.view(1, -1, *([1] * len(spatial)))
        mixed = (self.mamba(x) + scale * x.float()).flatten(2).transpose(1, 2)
        out = self.proj(self.norm(mixed))
        return out.transpose(1, 2).reshape(batch, -1, *spatial)


class ResidualMambaBlock(nn.Module):
    """``x + RVM(act(norm(RVM(act(norm(x))))))``."""

    def __init__(self, channels: int, hp: UNetHyperParameters):
        super().__init__()
        self.body = nn.Sequential(*_norm_act(hp, channels), ResidualVisionMamba(channels, channels),
                                  *_norm_act(hp, channels), ResidualVisionMamba(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualUpBlock(nn.Module):
    """``dwconv(act(norm(x))) + s * x`` with a learnable per-channel scale s."""

    def __init__(self, channels: int, hp: UNetHyperParameters, kernel_size):
        super().__init__()
        padding = [k // 2 for k in kernel_size]
        self.body = nn.Sequential(*_norm_act(hp, channels),
                                  hp.conv_op(channels, channels, kernel_size, padding=padding, groups=channels))
        self.skip_scale = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip_scale.view(1, -1, *([1] * (x.dim() - 2))) * x


def _norm_act(hp: UNetHyperParameters, channels: int) -> list[nn.Module]:
    norm = hp.norm_op(channels, **hp.norm_op_kwargs) if hp.norm_op is not None else nn.Identity()
    act = hp.nonlin(**hp.nonlin_kwargs) if hp.nonlin is not None else nn.Identity()
    return [norm, act]


class LightMEncoder(nn.Module):
    """Stem conv and Mamba levels; returns every level's output (full resolution first)."""

    def __init__(self, hp: UNetHyperParameters, input_channels: int, blocks_down: list[int]):
        super().__init__()
        features = hp.features_per_stage
        padding = [k // 2 for k in hp.kernel_sizes[0]]
        self.stem = hp.conv_op(input_channels, features[0], hp.kernel_sizes[0], padding=padding)
        levels = []
        for i, n_blocks in enumerate(blocks_down):
            entry = [] if i == 0 else [ResidualVisionMamba(features[i - 1], features[i]),
                                       _max_pool(hp.conv_op, hp.strides[i])]
            levels.append(nn.Sequential(*entry, *(ResidualMambaBlock(features[i], hp) for _ in range(n_blocks))))
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        skips = []
        for level in self.levels:
            x = level(x)
            skips.append(x)
        return skips


def _max_pool(conv_op, stride) -> nn.Module:
    pool = nn.MaxPool3d if conv_op is nn.Conv3d else nn.MaxPool2d
    return pool(kernel_size=stride, stride=stride)


class LightMDecoder(nn.Module):
    """Upsample-add-refine decoder with optional deep-supervision heads."""

    def __init__(self, hp: UNetHyperParameters, num_classes: int, blocks_up: list[int], deep_supervision: bool):
        super().__init__()
        self.deep_supervision = deep_supervision
        features = hp.features_per_stage
        self.mode = "trilinear" if hp.conv_op is nn.Conv3d else "bilinear"
        n_up = len(blocks_up)
        self.reduce = nn.ModuleList(hp.conv_op(features[n_up - j], features[n_up - j - 1], 1)
                                    for j in range(n_up))
        self.refine = nn.ModuleList(
            nn.Sequential(*(ResidualUpBlock(features[n_up - j - 1], hp, hp.kernel_sizes[n_up - j - 1])
                            for _ in range(blocks_up[j])))
            for j in range(n_up))
        self.heads = nn.ModuleList(
            nn.Sequential(*_norm_act(hp, features[n_up - j - 1]), hp.conv_op(features[n_up - j - 1], num_classes, 1))
            for j in range(n_up))

    def forward(self, skips: list[torch.Tensor]):
        x = skips[-1]
        outputs = []
        for j, (reduce, refine, head) in enumerate(zip(self.reduce, self.refine, self.heads)):
            skip = skips[-(j + 2)]
            x = refine(F.interpolate(reduce(x), size=skip.shape[2:], mode=self.mode) + skip)
            if self.deep_supervision or j == len(self.refine) - 1:
                outputs.append(head(x))
        return outputs[::-1] if self.deep_supervision else outputs[-1]


class LightMUNet(nn.Module):
    """LightM-UNet built from nnU-Net plans (see module docstring)."""

    def __init__(self, hp: UNetHyperParameters, input_channels: int, num_classes: int,
                 deep_supervision: bool = False, blocks_down: list[int] | None = None,
                 blocks_up: list[int] | None = None):
        super().__init__()
        default_down, default_up = default_blocks(hp.n_stages)
        blocks_down = list(blocks_down or default_down)
        blocks_up = list(blocks_up or default_up)
        if len(blocks_down) != hp.n_stages or len(blocks_up) != hp.n_stages - 1:
            raise ValueError(f"blocks_down needs {hp.n_stages} and blocks_up {hp.n_stages - 1} entries "
                             f"for these plans, got {blocks_down} and {blocks_up}")
        self.encoder = LightMEncoder(hp, input_channels, blocks_down)
        self.decoder = LightMDecoder(hp, num_classes, blocks_up, deep_supervision)

    def forward(self, x: torch.Tensor):
        return self.decoder(self.encoder(x))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        initialize_unet(module)
