"""Our nnU-Net trainers: loss x network x augmentation, composed from one-concern mixins.

Every trainer ``X`` here, and nnU-Net's own ``nnUNetTrainer``, has a twin
``XShort`` with a short schedule and no mirroring (for CPU tests and the demo),
e.g. ``nnUNetTrainerDiceFocalShort``. List them with ``mslesseg trainers``. Networks come from ``mslesseg_nnunet.networks``
and are imported only when built, so this module imports without mamba-ssm or MONAI.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from mslesseg_nnunet.trainer_mixins import (
    AdamOptimizerMixin, DiceFocalLossMixin, GINAugmentationMixin, MSCSANetworkMixin,
    NoDeepSupervisionMixin, NoMirroringMixin, ShortScheduleMixin, network_from_registry)


class nnUNetTrainerDiceFocal(DiceFocalLossMixin, nnUNetTrainer):
    """nnU-Net default network with Dice + Focal loss (1:1, gamma 2)."""


class nnUNetTrainerMSCSA(MSCSANetworkMixin, nnUNetTrainer):
    """U-Net with multi-stage cross-scale attention on the skips, Dice + CE."""


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


class nnUNetTrainerUMambaEncCapped(nnUNetTrainer):
    """UMambaEnc without Mamba on stages above 16,384 voxels (a CPU choice, not the paper's), Dice + CE."""

    build_network_architecture = network_from_registry("UMambaEncCapped")


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


class nnUNetTrainerShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainer):
    """nnU-Net default network, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerDiceFocalShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerDiceFocal):
    """nnU-Net default network with Dice + Focal loss (1:1, gamma 2); short schedule, no mirroring."""


class nnUNetTrainerMSCSAShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerMSCSA):
    """U-Net with multi-stage cross-scale attention on the skips, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerMSCSADiceFocalShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerMSCSADiceFocal):
    """MSCSA network with Dice + Focal loss; short schedule, no mirroring."""


class nnUNetTrainerUMambaBotShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerUMambaBot):
    """Residual U-Net with a Mamba layer at the bottleneck (U-Mamba Bot), Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerUMambaBotDiceFocalShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerUMambaBotDiceFocal):
    """UMambaBot network with Dice + Focal loss; short schedule, no mirroring."""


class nnUNetTrainerUMambaEncShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerUMambaEnc):
    """Residual U-Net with a Mamba layer after every encoder stage (U-Mamba Enc), Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerUMambaEncDiceFocalShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerUMambaEncDiceFocal):
    """UMambaEnc network with Dice + Focal loss; short schedule, no mirroring."""


class nnUNetTrainerUMambaEncCappedShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerUMambaEncCapped):
    """UMambaEnc without Mamba on stages above 16,384 voxels; short schedule, no mirroring."""


class nnUNetTrainerLightMUNetShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerLightMUNet):
    """LightM-UNet (Mamba-based lightweight U-Net), Adam lr 1e-4, no deep supervision, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerGINShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerGIN):
    """nnU-Net default with GIN random-convolution intensity augmentation, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerUNetPlusPlusShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerUNetPlusPlus):
    """UNet++ (nested dense skip pathways) on the plans' encoder, 2D or 3D, deep supervision, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerSwinUNETRShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerSwinUNETR):
    """MONAI SwinUNETR (feature size 48 with default plans), Adam lr 1e-4, no deep supervision, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerUNETRShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerUNETR):
    """MONAI UNETR (ViT-B, feature size 16 with default plans), Adam lr 1e-4, no deep supervision, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerSegResNetShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerSegResNet):
    """MONAI SegResNet (initial filters from the plans), Adam lr 1e-4, no deep supervision, Dice + CE; short schedule, no mirroring."""
