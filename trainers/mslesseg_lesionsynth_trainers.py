"""Lesion-synthesis trainers: synthetic MS lesions pasted into training patches.

``LesionSynthesisMixin`` adds :class:`mslesseg_nnunet.lesion_synthesis.LesionSynthesisTransform`
right after nnU-Net's spatial transforms (so the pasted lesions go through the
same intensity augmentation as real ones). Compose it with any of our trainers
by putting it first in the bases, e.g.
``class nnUNetTrainerMSCSALesionSynth(LesionSynthesisMixin, nnUNetTrainerMSCSA)``.
"""
from __future__ import annotations

import numpy as np
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from mslesseg_nnunet.lesion_synthesis import LesionSynthesisTransform, channel_contrasts
from mslesseg_nnunet.trainer_mixins import (
    DiceFocalLossMixin, NoMirroringMixin, ShortScheduleMixin, insert_after_spatial)


class LesionSynthesisMixin:
    """Augmentation: synthetic lesions pasted into real:synthetic = ``lesion_synth_ratio`` of the samples.

    ``lesion_synth_ratio`` (real, synthetic): Kamraoui et al.'s 1:3 by default
    (3 of 4 samples get synthetic lesions). ``lesion_synth_volume_mm3``: lesion
    volume range (log-uniform; converted to voxels with the plans' spacing);
    ``lesion_synth_count``: lesions per synthetic sample;
    ``lesion_synth_tissue_percentiles``: where they go ((0, 100): anywhere in
    the brain). Contrast ranges per channel come from the dataset's channel
    names (:func:`~mslesseg_nnunet.lesion_synthesis.channel_contrasts`). For
    datasets with one foreground label (binary lesions, MSSEG-2 new lesions).
    Goes first in the bases: its ``get_training_transforms`` reads the trainer
    instance (channel names, labels, spacing).
    """

    lesion_synth_ratio = (1, 3)
    lesion_synth_volume_mm3 = (3.0, 1500.0)
    lesion_synth_count = (1, 4)
    lesion_synth_tissue_percentiles = (20.0, 80.0)

    def get_training_transforms(self, *args, **kwargs):
        transforms = super().get_training_transforms(*args, **kwargs)
        insert_after_spatial(transforms, self.lesion_synthesis_transform())
        return transforms

    def lesion_synthesis_transform(self) -> LesionSynthesisTransform:
        """The transform for this trainer's dataset and plans."""
        labels = self.label_manager
        if labels.has_regions or len(labels.foreground_labels) != 1:
            raise ValueError(f"{type(self).__name__}: lesion synthesis needs a dataset with one lesion label "
                             f"(binary or MSSEG-2 new lesions), got labels {labels.all_labels}"
                             + (" and regions" if labels.has_regions else ""))
        real, synthetic = self.lesion_synth_ratio
        if real < 0 or synthetic < 0 or real + synthetic <= 0:
            raise ValueError(f"{type(self).__name__}: lesion_synth_ratio must be two non-negative numbers "
                             f"(real, synthetic), not both 0, got {self.lesion_synth_ratio}")
        names = self.dataset_json["channel_names"]
        spacing = np.asarray(self.configuration_manager.spacing, dtype=float)
        voxel_mm3 = float(np.prod(spacing)) ** (3.0 / spacing.size)
        return LesionSynthesisTransform(
            channel_contrasts([names[k] for k in sorted(names, key=int)]), label=labels.foreground_labels[0],
            probability=synthetic / (real + synthetic),
            volume=tuple(v / voxel_mm3 for v in self.lesion_synth_volume_mm3),
            count=self.lesion_synth_count, tissue_percentiles=self.lesion_synth_tissue_percentiles)


class nnUNetTrainerLesionSynth(LesionSynthesisMixin, nnUNetTrainer):
    """nnU-Net default with synthetic lesions pasted into training patches (real:synthetic 1:3), Dice + CE."""


class nnUNetTrainerLesionSynthDiceFocal(LesionSynthesisMixin, DiceFocalLossMixin, nnUNetTrainer):
    """nnU-Net default with synthetic lesions pasted into training patches (1:3), Dice + Focal loss."""


class nnUNetTrainerLesionSynthShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerLesionSynth):
    """nnU-Net default + synthetic lesions (1:3), Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerLesionSynthDiceFocalShort(ShortScheduleMixin, NoMirroringMixin,
                                             nnUNetTrainerLesionSynthDiceFocal):
    """nnU-Net default + synthetic lesions (1:3), Dice + Focal loss; short schedule, no mirroring."""
