"""Trainers for unseen scanners: IQDA, lesion-mask variants and the Tversky loss (issue 15).

Each is one mixin of ``mslesseg_robustness_mixins`` on an existing trainer;
the mixins compose with any of our trainers the same way. Every trainer has
a ``...Short`` twin (short schedule, no mirroring) for CPU tests and the demo.
Offline GIN views (MMS) are a dataset, not a trainer: ``mslesseg gin-views``.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from mslesseg_nnunet.robustness_mixins import IQDAMixin, LesionMaskVariantsMixin, \
    TverskyLossMixin
from mslesseg_nnunet.trainer_mixins import DiceFocalLossMixin, NoMirroringMixin, \
    ShortScheduleMixin


class nnUNetTrainerIQDA(IQDAMixin, nnUNetTrainer):
    """nnU-Net default with IQDA (blur / unsharp masking / thick-slice look per channel), Dice + CE."""


class nnUNetTrainerIQDAShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerIQDA):
    """nnU-Net default with IQDA, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerDiceFocalIQDA(IQDAMixin, DiceFocalLossMixin, nnUNetTrainer):
    """nnU-Net default network with IQDA, Dice + Focal loss."""


class nnUNetTrainerDiceFocalIQDAShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerDiceFocalIQDA):
    """nnU-Net default network with IQDA, Dice + Focal loss; short schedule, no mirroring."""


class nnUNetTrainerMaskVariants(LesionMaskVariantsMixin, nnUNetTrainer):
    """nnU-Net default with AdasLab's Monte Carlo lesion-mask variants (erode / dilate / remove), Dice + CE."""


class nnUNetTrainerMaskVariantsShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerMaskVariants):
    """nnU-Net default with Monte Carlo lesion-mask variants, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerDiceFocalMaskVariants(LesionMaskVariantsMixin, DiceFocalLossMixin, nnUNetTrainer):
    """nnU-Net default network with Monte Carlo lesion-mask variants, Dice + Focal loss."""


class nnUNetTrainerDiceFocalMaskVariantsShort(ShortScheduleMixin, NoMirroringMixin,
                                              nnUNetTrainerDiceFocalMaskVariants):
    """nnU-Net default network with lesion-mask variants, Dice + Focal; short schedule, no mirroring."""


class nnUNetTrainerTversky(TverskyLossMixin, nnUNetTrainer):
    """nnU-Net default network with Tversky (alpha 0.3 FP, beta 0.7 FN) + CE loss."""


class nnUNetTrainerTverskyShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerTversky):
    """nnU-Net default network with Tversky + CE loss; short schedule, no mirroring."""
