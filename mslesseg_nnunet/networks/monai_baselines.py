"""MONAI's SwinUNETR, UNETR and SegResNet built from nnU-Net plans (the MSLesSeg baselines).

With nnU-Net's default plans (32 first-stage features) the configurations are
those of the reference implementations the MSLesSeg data descriptor points to
(MONAI research-contributions): SwinUNETR with feature size 48, depths
(2, 2, 2, 2), heads (3, 6, 12, 24), window 7; UNETR with ViT-B (hidden 768,
MLP 3072, 12 heads, 16^3 patches, perceptron embedding), feature size 16,
instance norm; SegResNet (Myronenko 2018) with 32 initial filters, blocks down
(1, 2, 2, 4), up (1, 1, 1). Rule: these widths scale with the plans'
first-stage features ``f0`` (x f0 / 32), so CPU plans (f0 = 8) get a quarter
of the width. Spatial dimensions, input and output channels come from the
plans; weights are initialised by MONAI, nothing is downloaded.

Each network needs input sizes divisible by its total downsampling (SwinUNETR
32, UNETR 16, SegResNet 8). Rule: :class:`PaddedToMultiple` zero-pads every
input at the end of each axis to the next multiple and crops the logits back,
identically at training and inference, so any plans work (SwinUNETR needs a
patch with an axis above 32); a plans patch that is already a multiple avoids
the padding's cost.

MONAI is an optional dependency (``pip install 'mslesseg-nnunet[baselines]'``):
it is imported only when one of these networks is built.
"""
from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from mslesseg_nnunet.networks.plans import unet_hyperparameters

INSTALL_HINT = "pip install 'mslesseg-nnunet[baselines]' (or: pip install monai)"

SWIN_UNETR_DIVISOR = 32  # patch embedding 2 x four patch-merging stages
UNETR_PATCH = 16
SEGRESNET_BLOCKS_DOWN = (1, 2, 2, 4)
SEGRESNET_DIVISOR = 2 ** (len(SEGRESNET_BLOCKS_DOWN) - 1)
REFERENCE_FEATURES = 32  # first-stage features of nnU-Net's default plans


def monai_nets():
    """``monai.networks.nets``, or an ImportError saying how to install MONAI."""
    try:
        return importlib.import_module("monai.networks.nets")
    except ImportError as error:
        raise ImportError(f"the SwinUNETR, UNETR and SegResNet baselines need MONAI: {INSTALL_HINT} "
                          f"({error})") from error


def padded_size(size, multiple: int) -> tuple[int, ...]:
    """Every entry of ``size`` rounded up to a multiple of ``multiple``."""
    return tuple(-(-int(s) // multiple) * multiple for s in size)


def _refuse_deep_supervision(name: str, enabled: bool) -> None:
    if enabled:
        raise ValueError(f"{name} has no deep-supervision outputs: build it with enable_deep_supervision=False "
                         "(trainers: NoDeepSupervisionMixin)")


class PaddedToMultiple(nn.Module):
    """``network`` applied to the input zero-padded (end of each spatial axis) to multiples of
    ``multiple``; returns its logits cropped back to the input's size."""

    def __init__(self, network: nn.Module, multiple: int):
        super().__init__()
        self.network = network
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        target = padded_size(size, self.multiple)
        if target == tuple(size):
            return self.network(x)
        pad = [p for s, t in zip(reversed(size), reversed(target)) for p in (0, t - s)]
        out = self.network(F.pad(x, pad))
        return out[(..., *(slice(0, s) for s in size))]


def scaled_width(configuration_manager, reference: int, multiple: int, name: str) -> int:
    """``reference`` x the plans' first-stage features / 32 (nnU-Net's default: the reference width);
    a ValueError naming ``name`` unless the result is a positive multiple of ``multiple``."""
    first = unet_hyperparameters(configuration_manager).features_per_stage[0]
    width, remainder = divmod(reference * first, REFERENCE_FEATURES)
    if remainder or width < multiple or width % multiple:
        raise ValueError(f"{name}: the plans' first-stage features ({first}) give a width of "
                         f"{reference * first / REFERENCE_FEATURES:g}, not a multiple of {multiple}; "
                         "use plans whose features_per_stage[0] is a multiple of 8")
    return width


def build_swin_unetr(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                     enable_deep_supervision: bool = False) -> nn.Module:
    """MONAI SwinUNETR (feature size 48 x f0 / 32) for the plans' dimensionality; no deep supervision."""
    _refuse_deep_supervision("SwinUNETR", enable_deep_supervision)
    patch = list(configuration_manager.patch_size)
    padded = padded_size(patch, SWIN_UNETR_DIVISOR)
    if math.prod(padded) == SWIN_UNETR_DIVISOR ** len(padded):
        raise ValueError(f"SwinUNETR: patch {patch} (padded to {'x'.join(map(str, padded))}) leaves one voxel "
                         f"at its 1/{SWIN_UNETR_DIVISOR} bottleneck, too few for instance norm; use a patch "
                         f"with an axis above {SWIN_UNETR_DIVISOR}")
    network = monai_nets().SwinUNETR(
        in_channels=num_input_channels, out_channels=num_output_channels,
        feature_size=scaled_width(configuration_manager, 48, 12, "SwinUNETR"),
        depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), norm_name="instance",
        spatial_dims=len(patch))
    return PaddedToMultiple(network, SWIN_UNETR_DIVISOR)


def build_unetr(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                enable_deep_supervision: bool = False) -> nn.Module:
    """MONAI UNETR (ViT-B and feature size 16, x f0 / 32) for the plans' patch (padded to 16s);
    no deep supervision."""
    _refuse_deep_supervision("UNETR", enable_deep_supervision)
    patch = configuration_manager.patch_size
    hidden = scaled_width(configuration_manager, 768, 12, "UNETR")
    network = monai_nets().UNETR(
        in_channels=num_input_channels, out_channels=num_output_channels,
        img_size=padded_size(patch, UNETR_PATCH), feature_size=scaled_width(configuration_manager, 16, 1, "UNETR"),
        hidden_size=hidden, mlp_dim=4 * hidden, num_heads=12, proj_type="perceptron", norm_name="instance",
        res_block=True, spatial_dims=len(patch))
    return PaddedToMultiple(network, UNETR_PATCH)


def build_segresnet(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                    enable_deep_supervision: bool = False) -> nn.Module:
    """MONAI SegResNet with the plans' first-stage features as initial filters; no deep supervision."""
    _refuse_deep_supervision("SegResNet", enable_deep_supervision)
    network = monai_nets().SegResNet(
        spatial_dims=len(configuration_manager.patch_size), in_channels=num_input_channels,
        out_channels=num_output_channels, init_filters=scaled_width(configuration_manager, 32, 8, "SegResNet"),
        blocks_down=SEGRESNET_BLOCKS_DOWN, blocks_up=(1, 1, 1))
    return PaddedToMultiple(network, SEGRESNET_DIVISOR)
