"""Network architectures built from nnU-Net plans, for our trainers.

:data:`ARCHITECTURES` maps a name to a builder with the signature of nnU-Net
2.8's ``nnUNetTrainer.build_network_architecture``::

    builder(plans_manager, configuration_manager, num_input_channels,
            num_output_channels, enable_deep_supervision=True) -> nn.Module

Every network returns logits only (a list, highest resolution first, when
deep supervision is on, one output per scale of nnU-Net's deep-supervision
targets for these plans), has the ``network.decoder.deep_supervision``
switch and a static ``initialize`` already applied. Builders accept plain
(``nnUNetPlans``) and residual-encoder (``nnUNetResEncUNet*Plans``) plans.
The MONAI baselines (``SwinUNETR``, ``UNETR``, ``SegResNet``) are the
exception: MONAI's initialisation, no deep supervision (building them with
``enable_deep_supervision=True`` raises) and no switch.
Importing this package never needs ``mamba_ssm`` or ``monai``.
"""
from __future__ import annotations

from torch import nn

from mslesseg_nnunet.networks.lightm_unet import LightMUNet
from mslesseg_nnunet.networks.monai_baselines import build_segresnet, build_swin_unetr, build_unetr
from mslesseg_nnunet.networks.mscsa import MSCSAUNet
from mslesseg_nnunet.networks.plans import UNetHyperParameters, unet_hyperparameters
from mslesseg_nnunet.networks.umamba import UMAMBA_ENC_MAX_TOKENS, UMamba, bottleneck_stages, encoder_stages
from mslesseg_nnunet.networks.unet_plus_plus import UNetPlusPlus

__all__ = ["ARCHITECTURES", "UNetHyperParameters", "unet_hyperparameters", "build_mscsa",
           "build_umamba_bot", "build_umamba_enc", "build_umamba_enc_capped", "build_lightm_unet", "build_unet_plus_plus",
           "build_swin_unetr", "build_unetr", "build_segresnet"]


def _initialized(network: nn.Module) -> nn.Module:
    network.apply(network.initialize)
    return network


def build_mscsa(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                enable_deep_supervision: bool = True) -> nn.Module:
    """U-Net from the plans with multi-stage cross-scale attention on the skips."""
    hp = unet_hyperparameters(configuration_manager)
    return _initialized(MSCSAUNet(hp, num_input_channels, num_output_channels, enable_deep_supervision))


def build_umamba_bot(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                     enable_deep_supervision: bool = True) -> nn.Module:
    """Residual U-Net from the plans with a Mamba layer at the bottleneck."""
    hp = unet_hyperparameters(configuration_manager)
    return _initialized(UMamba(hp, num_input_channels, num_output_channels, bottleneck_stages(hp),
                               enable_deep_supervision))


def build_umamba_enc(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                     enable_deep_supervision: bool = True, *, max_tokens: int | None = None) -> nn.Module:
    """Residual U-Net from the plans with a Mamba layer after every encoder stage, as in the
    paper (``max_tokens``: only after stages of at most that many voxels for the plans' patch)."""
    hp = unet_hyperparameters(configuration_manager)
    return _initialized(UMamba(hp, num_input_channels, num_output_channels, encoder_stages(hp, max_tokens),
                               enable_deep_supervision))


def build_umamba_enc_capped(plans_manager, configuration_manager, num_input_channels: int,
                            num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
    """UMambaEnc without Mamba on the stages above UMAMBA_ENC_MAX_TOKENS voxels (a CPU choice)."""
    return build_umamba_enc(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                            enable_deep_supervision, max_tokens=UMAMBA_ENC_MAX_TOKENS)


def build_lightm_unet(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                      enable_deep_supervision: bool = True) -> nn.Module:
    """LightM-UNet with the plans' stages, features and strides (the paper trains it without deep supervision)."""
    hp = unet_hyperparameters(configuration_manager)
    return _initialized(LightMUNet(hp, num_input_channels, num_output_channels, enable_deep_supervision))


def build_unet_plus_plus(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                         enable_deep_supervision: bool = True) -> nn.Module:
    """UNet++: the plans' encoder (2D or 3D) with nested dense skip pathways."""
    hp = unet_hyperparameters(configuration_manager)
    return _initialized(UNetPlusPlus(hp, num_input_channels, num_output_channels, enable_deep_supervision))


ARCHITECTURES = {
    "MSCSA": build_mscsa,
    "UMambaBot": build_umamba_bot,
    "UMambaEnc": build_umamba_enc,
    "UMambaEncCapped": build_umamba_enc_capped,
    "LightMUNet": build_lightm_unet,
    "UNetPlusPlus": build_unet_plus_plus,
    "SwinUNETR": build_swin_unetr,
    "UNETR": build_unetr,
    "SegResNet": build_segresnet,
}
