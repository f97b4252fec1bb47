"""U-Net hyper-parameters read from an nnU-Net configuration, and the shared parts built from them.

Both nnU-Net plan families describe their U-Net in
``configuration_manager.network_arch_init_kwargs``:
``nnUNetPlans`` (``PlainConvUNet``, ``n_conv_per_stage``) and the residual
encoder presets such as ``nnUNetResEncUNetMPlans`` (``ResidualEncoderUNet``,
``n_blocks_per_stage``). :func:`unet_hyperparameters` turns either into one
:class:`UNetHyperParameters`, so every architecture here is built from the
plans the same way at training and at inference.
"""
from __future__ import annotations

import pydoc
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import (
    InitWeights_He,
    init_last_bn_before_add_to_0,
)

RESIDUAL_ARCH = "ResidualEncoderUNet"
PLAIN_ARCH = "PlainConvUNet"


@dataclass(frozen=True)
class UNetHyperParameters:
    """What a U-Net needs from the plans (ops already resolved to classes).

    ``n_blocks_per_stage`` holds ``n_blocks_per_stage`` for residual-encoder
    plans and ``n_conv_per_stage`` for plain plans; ``residual`` says which.
    """

    n_stages: int
    features_per_stage: list[int]
    conv_op: type
    kernel_sizes: list[list[int]]
    strides: list[list[int]]
    n_blocks_per_stage: list[int]
    n_conv_per_stage_decoder: list[int]
    conv_bias: bool
    norm_op: type | None
    norm_op_kwargs: dict[str, Any] = field(default_factory=dict)
    dropout_op: type | None = None
    dropout_op_kwargs: dict[str, Any] | None = None
    nonlin: type | None = None
    nonlin_kwargs: dict[str, Any] = field(default_factory=dict)
    residual: bool = False
    patch_size: tuple[int, ...] = ()

    def ops(self) -> dict[str, Any]:
        """Keyword arguments shared by dynamic-network-architectures blocks."""
        return dict(conv_bias=self.conv_bias, norm_op=self.norm_op, norm_op_kwargs=self.norm_op_kwargs,
                    dropout_op=self.dropout_op, dropout_op_kwargs=self.dropout_op_kwargs,
                    nonlin=self.nonlin, nonlin_kwargs=self.nonlin_kwargs)

    def feature_map_sizes(self) -> list[tuple[int, ...]]:
        """Spatial size of every encoder stage's output for ``patch_size``."""
        sizes, size = [], tuple(self.patch_size)
        for stride in self.strides:
            size = tuple(s // k for s, k in zip(size, stride))
            sizes.append(size)
        return sizes


def unet_hyperparameters(configuration_manager) -> UNetHyperParameters:
    """Read the U-Net hyper-parameters of a plans configuration.

    Parameters
    ----------
    configuration_manager : nnunetv2 ConfigurationManager
        One configuration of a ``PlainConvUNet`` or ``ResidualEncoderUNet`` plans file.

    Returns
    -------
    UNetHyperParameters
    """
    arch = configuration_manager.network_arch_class_name.rsplit(".", 1)[-1]
    if arch not in (PLAIN_ARCH, RESIDUAL_ARCH):
        raise ValueError(f"plans architecture {configuration_manager.network_arch_class_name} is not supported; "
                         f"use nnUNetPlans ({PLAIN_ARCH}) or a residual encoder preset ({RESIDUAL_ARCH})")
    kwargs = dict(configuration_manager.network_arch_init_kwargs)
    for key in configuration_manager.network_arch_init_kwargs_req_import:
        if kwargs.get(key) is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    residual = arch == RESIDUAL_ARCH
    n_stages = kwargs["n_stages"]
    return UNetHyperParameters(
        n_stages=n_stages,
        features_per_stage=_per_stage(kwargs["features_per_stage"], n_stages),
        conv_op=kwargs["conv_op"],
        kernel_sizes=_per_stage(kwargs["kernel_sizes"], n_stages),
        strides=_per_stage(kwargs["strides"], n_stages),
        n_blocks_per_stage=_per_stage(kwargs["n_blocks_per_stage" if residual else "n_conv_per_stage"], n_stages),
        n_conv_per_stage_decoder=_per_stage(kwargs["n_conv_per_stage_decoder"], n_stages - 1),
        conv_bias=kwargs.get("conv_bias", False),
        norm_op=kwargs.get("norm_op"),
        norm_op_kwargs=kwargs.get("norm_op_kwargs") or {},
        dropout_op=kwargs.get("dropout_op"),
        dropout_op_kwargs=kwargs.get("dropout_op_kwargs"),
        nonlin=kwargs.get("nonlin"),
        nonlin_kwargs=kwargs.get("nonlin_kwargs") or {},
        residual=residual,
        patch_size=tuple(configuration_manager.patch_size),
    )


def _per_stage(value, n: int) -> list:
    """Expand a scalar plans entry to one entry per stage."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * n


def build_encoder(hp: UNetHyperParameters, input_channels: int, residual: bool | None = None) -> nn.Module:
    """The nnU-Net encoder for ``hp`` (returns the skips of every stage).

    ``residual`` overrides the plans' choice (``None`` keeps it); a residual
    encoder built from plain plans uses ``n_conv_per_stage`` as block counts.
    """
    residual = hp.residual if residual is None else residual
    encoder_cls = ResidualEncoder if residual else PlainConvEncoder
    return encoder_cls(input_channels, hp.n_stages, hp.features_per_stage, hp.conv_op, hp.kernel_sizes,
                       hp.strides, hp.n_blocks_per_stage, **hp.ops(), return_skips=True)


def build_decoder(encoder: nn.Module, hp: UNetHyperParameters, num_classes: int,
                  deep_supervision: bool) -> UNetDecoder:
    """nnU-Net's U-Net decoder (transposed convs, conv blocks, one head per stage)."""
    return UNetDecoder(encoder, num_classes, hp.n_conv_per_stage_decoder, deep_supervision)


def initialize_unet(module: nn.Module) -> None:
    """Weight initialisation of nnU-Net's U-Nets (He init; zeroed last norm in residual blocks)."""
    InitWeights_He(1e-2)(module)
    init_last_bn_before_add_to_0(module)

