"""UNet++: nnU-Net's encoder with nested, dense skip pathways (Zhou et al., DLMIA 2018, arXiv 1807.10165).

Nodes ``X^{i,j}`` (level ``i`` = resolution stage, ``j`` = position along
the skip pathway). ``X^{i,0}`` are the encoder stages; every other node is

    X^{i,j} = H([X^{i,0}, ..., X^{i,j-1}, U(X^{i+1,j-1})])    for i + j <= L - 1

with ``U`` a transposed convolution to level ``i``'s width and grid and ``H``
nnU-Net's decoder conv block of level ``i`` (``n_conv_per_stage_decoder``,
kernel sizes, norm and nonlinearity from the plans). ``L`` is the number of
plans stages, so there are ``L (L - 1) / 2`` nested nodes. Works for 2D and 3D
plans, plain or residual encoder.

Outputs follow nnU-Net's deep-supervision contract: one 1x1 head per level
``i < L - 1`` on the last node of that level, ``X^{i, L-1-i}`` (the diagonal
that plays the U-Net decoder's role), highest resolution first; with deep
supervision off only ``X^{0, L-1}``'s head, as in the paper's accurate mode.
The paper's alternative (full-resolution heads on ``X^{0,1..L-1}``, averaged)
does not match nnU-Net's multi-scale targets and is not offered.
"""
from __future__ import annotations

import torch
from dynamic_network_architectures.building_blocks.helper import get_matching_convtransp
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from torch import nn

from mslesseg_nnunet.networks.plans import UNetHyperParameters, build_encoder, initialize_unet


class NestedSkipDecoder(nn.Module):
    """The nested nodes ``X^{i,j}`` (j >= 1) and the per-level heads; ``forward(skips)`` takes ``X^{i,0}``.

    ``nodes[i][j - 1]`` is ``H`` of ``X^{i,j}``, ``upsamplers[i][j - 1]`` its ``U``.
    """

    def __init__(self, hp: UNetHyperParameters, num_classes: int, deep_supervision: bool):
        super().__init__()
        self.deep_supervision = deep_supervision
        levels = hp.n_stages
        features = hp.features_per_stage
        transposed = get_matching_convtransp(conv_op=hp.conv_op)
        self.nodes, self.upsamplers = nn.ModuleList(), nn.ModuleList()
        for i in range(levels - 1):
            n_convs = hp.n_conv_per_stage_decoder[levels - 2 - i]  # plans list the decoder deepest first
            stride = hp.strides[i + 1]
            self.upsamplers.append(nn.ModuleList(
                transposed(features[i + 1], features[i], stride, stride, bias=hp.conv_bias)
                for _ in range(1, levels - i)))
            self.nodes.append(nn.ModuleList(
                StackedConvBlocks(n_convs, hp.conv_op, (j + 1) * features[i], features[i], hp.kernel_sizes[i], 1,
                                  **hp.ops())
                for j in range(1, levels - i)))
        self.seg_layers = nn.ModuleList(hp.conv_op(features[i], num_classes, 1, 1, 0, bias=True)
                                        for i in range(levels - 1))

    def forward(self, skips: list[torch.Tensor]):
        grid = [[x] for x in skips]  # grid[i][j] = X^{i,j}
        levels = len(skips)
        for j in range(1, levels):
            for i in range(levels - j):
                up = self.upsamplers[i][j - 1](grid[i + 1][j - 1])
                grid[i].append(self.nodes[i][j - 1](torch.cat([*grid[i], up], dim=1)))
        if not self.deep_supervision:
            return self.seg_layers[0](grid[0][-1])
        return [head(grid[i][-1]) for i, head in enumerate(self.seg_layers)]


class UNetPlusPlus(nn.Module):
    """nnU-Net encoder from the plans + :class:`NestedSkipDecoder`."""

    def __init__(self, hp: UNetHyperParameters, input_channels: int, num_classes: int,
                 deep_supervision: bool = True):
        super().__init__()
        self.encoder = build_encoder(hp, input_channels)
        self.decoder = NestedSkipDecoder(hp, num_classes, deep_supervision)

    def forward(self, x: torch.Tensor):
        return self.decoder(self.encoder(x))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        initialize_unet(module)
