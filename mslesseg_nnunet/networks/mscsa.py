"""U-Net with multi-stage cross-scale attention (MSCSA) on the skip connections.

Shang et al., "Vision Backbone Enhancement via Multi-Stage Cross-Scale
Attention", arXiv 2308.05872, as MadSeg placed it in nnU-Net: every encoder
stage output is resized to the second-deepest stage's grid, projected by a
1x1 conv and concatenated; one attention block whose keys/values are the
concatenated map plus depthwise strided (2x, 3x) copies of it mixes all
stages at all scales; the result is split per stage, resized back and injected
into each skip as ``local * hsigmoid(global) + global``. Encoder and decoder
are nnU-Net's, from the plans (plain or residual encoder).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mslesseg_nnunet.networks.plans import (
    UNetHyperParameters,
    build_decoder,
    build_encoder,
    initialize_unet,
)

KV_STRIDES = (1, 2, 3)
MLP_RATIO = 2


def _interpolation_mode(conv_op) -> str:
    return "trilinear" if conv_op is nn.Conv3d else "bilinear"


class CrossScaleAttention(nn.Module):
    """Transformer block: queries = tokens of a map, keys/values = the map at several scales.

    Parameters
    ----------
    conv_op : type
        ``nn.Conv2d`` or ``nn.Conv3d``.
    channels : int
        Token width (divisible by ``heads``).
    heads : int
        Attention heads.
    kv_strides : tuple of int
        Scales of the key/value pyramid; stride 1 is the map itself, the
        others are depthwise strided convolutions of it.
    """

    def __init__(self, conv_op, channels: int, heads: int, kv_strides=KV_STRIDES):
        super().__init__()
        self.heads = heads
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.reducers = nn.ModuleList(
            nn.Identity() if s == 1 else conv_op(channels, channels, 3, s, 1, groups=channels)
            for s in kv_strides)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, MLP_RATIO * channels), nn.GELU(),
                                 nn.Linear(MLP_RATIO * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, *spatial) -> same shape."""
        batch, channels, *spatial = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        pyramid = torch.cat([r(x).flatten(2) for r in self.reducers], dim=2).transpose(1, 2)
        q = self._split_heads(self.q(self.norm_q(tokens)))
        k, v = (self._split_heads(t) for t in self.kv(self.norm_kv(pyramid)).chunk(2, dim=-1))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, -1, channels)
        tokens = tokens + self.proj(attended)
        tokens = tokens + self.mlp(self.norm_mlp(tokens))
        return tokens.transpose(1, 2).reshape(batch, channels, *spatial)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        batch, length, channels = t.shape
        return t.reshape(batch, length, self.heads, channels // self.heads).transpose(1, 2)


class Injection(nn.Module):
    """Fuse a skip (local) with its global context: ``norm(W_l local) * hsigmoid(W_a g) + W_g g``."""

    def __init__(self, conv_op, norm_op, norm_op_kwargs, local_channels: int, global_channels: int):
        super().__init__()
        self.local_embed = conv_op(local_channels, local_channels, 1)
        self.local_norm = norm_op(local_channels, **norm_op_kwargs) if norm_op is not None else nn.Identity()
        self.global_act = conv_op(global_channels, local_channels, 1)
        self.global_embed = conv_op(global_channels, local_channels, 1)

    def forward(self, local: torch.Tensor, global_context: torch.Tensor) -> torch.Tensor:
        return (self.local_norm(self.local_embed(local)) * F.hardsigmoid(self.global_act(global_context))
                + self.global_embed(global_context))


class MultiStageCrossScaleAttention(nn.Module):
    """MSCSA over all encoder outputs: gather -> cross-scale attention -> split -> inject.

    Parameters
    ----------
    hp : UNetHyperParameters
        Plans of the U-Net whose skips are enhanced.
    embed_channels : int
        Width every stage is projected to before concatenation (default:
        ``features_per_stage[0]``).
    """

    def __init__(self, hp: UNetHyperParameters, embed_channels: int | None = None):
        super().__init__()
        self.embed = embed_channels or hp.features_per_stage[0]
        self.mode = _interpolation_mode(hp.conv_op)
        self.gather = nn.ModuleList(hp.conv_op(f, self.embed, 1) for f in hp.features_per_stage)
        self.attention = CrossScaleAttention(hp.conv_op, self.embed * hp.n_stages, heads=hp.n_stages)
        self.inject = nn.ModuleList(Injection(hp.conv_op, hp.norm_op, hp.norm_op_kwargs, f, self.embed)
                                    for f in hp.features_per_stage)

    def forward(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        grid = skips[-2].shape[2:]
        gathered = torch.cat([proj(F.interpolate(s, size=grid, mode=self.mode) if s.shape[2:] != grid else s)
                              for proj, s in zip(self.gather, skips)], dim=1)
        mixed = self.attention(gathered).split(self.embed, dim=1)
        return [inject(s, F.interpolate(g, size=s.shape[2:], mode=self.mode))
                for inject, s, g in zip(self.inject, skips, mixed)]


class MSCSAUNet(nn.Module):
    """nnU-Net U-Net (plain or residual encoder, from the plans) with MSCSA on its skips."""

    def __init__(self, hp: UNetHyperParameters, input_channels: int, num_classes: int,
                 deep_supervision: bool = True):
        super().__init__()
        self.encoder = build_encoder(hp, input_channels)
        self.mscsa = MultiStageCrossScaleAttention(hp)
        self.decoder = build_decoder(self.encoder, hp, num_classes, deep_supervision)

    def forward(self, x: torch.Tensor):
        return self.decoder(self.mscsa(self.encoder(x)))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        initialize_unet(module)
