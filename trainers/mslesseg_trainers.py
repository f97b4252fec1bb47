"""Our nnU-Net trainers: loss x network x augmentation, composed from one-concern mixins.

Every trainer ``X`` here also has a generated short-schedule twin ``XShort``
(for CPU tests and the demo), e.g. ``nnUNetTrainerDiceFocalShort``. List them
with ``mslesseg trainers``. Networks come from ``mslesseg_nnunet.networks``
and are imported only when built, so this module imports without mamba-ssm or MONAI.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from mslesseg_nnunet.trainers.mslesseg_trainer_mixins import (
    AdamOptimizerMixin, DiceFocalLossMixin, GINAugmentationMixin, NoDeepSupervisionMixin,
    network_from_registry, short_variant)


class nnUNetTrainerDiceFocal(DiceFocalLossMixin, nnUNetTrainer):
    """nnU-Net default network with Dice + Focal loss (1:1, gamma 2)."""


class nnUNetTrainerMSCSA(nnUNetTrainer):
    """U-Net with multi-stage cross-scale attention on the skips, Dice + CE."""

    build_network_architecture = network_from_registry("MSCSA")


class nnUNetTrainerMSCSADiceFocal(DiceFocalLossMixin, nnUNetTrainerMSCSA):
    """MSCSA network with Dice + Focal loss."""


class nnUNetTrainerUMambaBot(nnUNetTrainer):
    """Residual U-Net with a Mamba layer at the bottleneck (U-Mamba Bot), Dice + CE."""

    build_network_architecture = network_from_registry("UMambaBot")


class nnUNetTrainerUMambaBotDiceFocal(DiceFocalLossMixin, nnUNetTrainerUMambaBot):
    """UMambaBot network with Dice + Focal loss."""


class nnUNetTrainerUMambaEnc(nnUNetTrainer):
    """Residual U-Net with a Mamba layer after every encoder stage (U-Mamba Enc), Dice + CE."""

    build_network_architecture = network_from_registry("UMambaEnc")


class nnUNetTrainerUMambaEncDiceFocal(DiceFocalLossMixin, nnUNetTrainerUMambaEnc):
    """UMambaEnc network with Dice + Focal loss."""


class nnUNetTrainerLightMUNet(AdamOptimizerMixin, NoDeepSupervisionMixin, nnUNetTrainer):
    """LightM-UNet (Mamba-based lightweight U-Net), Adam lr 1e-4, no deep supervision, Dice + CE."""

    build_network_architecture = network_from_registry("LightMUNet")


class nnUNetTrainerGIN(GINAugmentationMixin, nnUNetTrainer):
    """nnU-Net default with GIN random-convolution intensity augmentation, Dice + CE."""


class nnUNetTrainerUNetPlusPlus(nnUNetTrainer):
    """UNet++ (nested dense skip pathways) on the plans' encoder, 2D or 3D, deep supervision, Dice + CE."""

    build_network_architecture = network_from_registry("UNetPlusPlus")


class nnUNetTrainerSwinUNETR(AdamOptimizerMixin, NoDeepSupervisionMixin, nnUNetTrainer):
    """MONAI SwinUNETR (feature size 48 with default plans), Adam lr 1e-4, no deep supervision, Dice + CE."""

    build_network_architecture = network_from_registry("SwinUNETR")


class nnUNetTrainerUNETR(AdamOptimizerMixin, NoDeepSupervisionMixin, nnUNetTrainer):
    """MONAI UNETR (ViT-B, feature size 16 with default plans), Adam lr 1e-4, no deep supervision, Dice + CE."""

    build_network_architecture = network_from_registry("UNETR")


class nnUNetTrainerSegResNet(AdamOptimizerMixin, NoDeepSupervisionMixin, nnUNetTrainer):
    """MONAI SegResNet (initial filters from the plans), Adam lr 1e-4, no deep supervision, Dice + CE."""

    build_network_architecture = network_from_registry("SegResNet")


FULL_SCHEDULE = [nnUNetTrainer, nnUNetTrainerDiceFocal, nnUNetTrainerMSCSA,
                 nnUNetTrainerMSCSADiceFocal, nnUNetTrainerUMambaBot, nnUNetTrainerUMambaBotDiceFocal,
                 nnUNetTrainerUMambaEnc, nnUNetTrainerUMambaEncDiceFocal, nnUNetTrainerLightMUNet,
                 nnUNetTrainerGIN, nnUNetTrainerUNetPlusPlus, nnUNetTrainerSwinUNETR, nnUNetTrainerUNETR,
                 nnUNetTrainerSegResNet]
for _trainer in FULL_SCHEDULE:
    globals()[f"{_trainer.__name__}Short"] = short_variant(_trainer, __name__)
del _trainer
