"""One-concern mixins for models that hold up on unseen scanners (issue 15).

- augmentation: ``IQDAMixin`` (image-quality degradations, Kamraoui et al.),
  ``LesionMaskVariantsMixin`` (AdasLab's Monte Carlo lesion-mask variants);
  both override ``get_training_transforms`` and insert their transform right
  after nnU-Net's spatial transforms, as ``GINAugmentationMixin`` does;
- loss: ``TverskyLossMixin`` (``_build_loss``: the Tversky index replaces the
  soft Dice term of whatever Dice + CE / Dice + Focal loss the rest builds,
  deep supervision included).

Mixins go before the loss / network classes in the bases, e.g.
``class X(IQDAMixin, DiceFocalLossMixin, nnUNetTrainer)``.
"""
from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.utilities.helpers import softmax_helper_dim1

from mslesseg_nnunet.image_quality import IQDATransform
from mslesseg_nnunet.mask_variants import LesionMaskVariantTransform
from mslesseg_nnunet.trainer_mixins import HyperparameterHook, insert_after_spatial
from mslesseg_nnunet.tversky_loss import DEFAULT_ALPHA, DEFAULT_BETA, TverskyLoss


class IQDAMixin:
    """Augmentation: IQDA, one of blur / unsharp masking / thick-slice mean filter per channel.

    Applied to a sample with probability ``iqda_probability`` (1: the paper
    degrades every training patch). ``iqda_thick_axes``: axes of nnU-Net's
    arrays the mean filter runs along; axis 0 is the slice axis of
    SimpleITK-read 1 mm scans (and nnU-Net moves a low-resolution axis there),
    the paper's axial direction.
    """

    iqda_probability = 1.0
    iqda_sigma_range = (0.5, 1.75)
    iqda_thick_sizes = (2, 3, 4)
    iqda_thick_axes = (0,)

    @classmethod
    def get_training_transforms(cls, *args, **kwargs):
        transforms = super().get_training_transforms(*args, **kwargs)
        iqda = IQDATransform(cls.iqda_sigma_range, cls.iqda_thick_sizes, cls.iqda_thick_axes)
        insert_after_spatial(transforms, RandomTransform(iqda, cls.iqda_probability))
        return transforms


class LesionMaskVariantsMixin(HyperparameterHook):
    """Augmentation: Monte Carlo lesion-mask variants, each lesion eroded / dilated / removed.

    A sample gets a variant with probability ``mask_variant_probability``;
    then each lesion independently is eroded (``mask_erode``), dilated
    (``mask_dilate``) or removed with its image in-painted (``mask_remove``).
    Refuses distance-based (``dbl``) labels.
    """

    mask_variant_probability = 0.5
    mask_erode = 0.25
    mask_dilate = 0.25
    mask_remove = 0.1

    def configure_hyperparameters(self) -> None:
        super().configure_hyperparameters()
        if self.dataset_json.get("labelling", {}).get("kind") == "dbl":
            raise ValueError(f"{type(self).__name__}: lesion-mask variants change lesion borders, which "
                             "distance-based (dbl) boundary/interior labels cannot follow; train on the "
                             "binary or multi-size dataset")

    @classmethod
    def get_training_transforms(cls, *args, **kwargs):
        transforms = super().get_training_transforms(*args, **kwargs)
        variant = LesionMaskVariantTransform(cls.mask_erode, cls.mask_dilate, cls.mask_remove,
                                             ignore_label=kwargs.get("ignore_label"))
        insert_after_spatial(transforms, RandomTransform(variant, cls.mask_variant_probability))
        return transforms


class TverskyLossMixin:
    """Loss: Tversky (alpha ``tversky_alpha`` on FP, beta ``tversky_beta`` on FN) instead of soft Dice.

    The cross-entropy (or focal) term of the loss built by the other bases
    stays, weighted ``tversky_ce_weight`` (0: Tversky alone, as Salehi et al.).
    """

    tversky_alpha = DEFAULT_ALPHA
    tversky_beta = DEFAULT_BETA
    tversky_ce_weight = 1.0

    def _build_loss(self):
        loss = super()._build_loss()
        compound = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
        if not isinstance(compound, DC_and_CE_loss):
            raise TypeError(f"{type(self).__name__}: TverskyLossMixin needs a Dice + CE style loss from "
                            f"the bases after it, got {type(compound).__name__} (put it after loss wrappers "
                            "such as CIBHeadsMixin in the bases)")
        compound.dc = TverskyLoss(softmax_helper_dim1, batch_dice=self.configuration_manager.batch_dice,
                                  do_bg=False, smooth=1e-5, ddp=self.is_ddp, alpha=self.tversky_alpha,
                                  beta=self.tversky_beta)
        if self._do_i_compile():
            compound.dc = torch.compile(compound.dc)
        compound.weight_ce = self.tversky_ce_weight
        return loss
