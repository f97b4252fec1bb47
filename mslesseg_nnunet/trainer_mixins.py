"""One-concern mixins that our nnU-Net trainers are composed of.

Each mixin overrides exactly the nnU-Net 2.8 hook(s) of its concern:

- loss: ``DiceFocalLossMixin`` (``_build_loss``);
- network: ``network_from_registry(name)`` gives the static
  ``build_network_architecture`` of ``mslesseg_nnunet.networks.ARCHITECTURES[name]``
  (``MSCSANetworkMixin`` for the MSCSA network, which two trainer modules use);
- augmentation: ``GINAugmentationMixin`` (``get_training_transforms``);
- optimisation: ``AdamOptimizerMixin``, ``NoDeepSupervisionMixin``;
- schedule: ``ShortScheduleMixin`` (few iterations, Adam), ``NoMirroringMixin``; every
  trainer ``X`` has a twin written out by name,
  ``class XShort(ShortScheduleMixin, NoMirroringMixin, X)``.

Mixins go before ``nnUNetTrainer`` in the bases. Hyperparameters that
nnU-Net's constructor sets are changed in ``configure_hyperparameters``
(chained with ``super()``), called once by :class:`HyperparameterHook`, the
only class here with a constructor (nnU-Net requires the exact 2.8
constructor signature to record ``my_init_kwargs``).
"""
from __future__ import annotations

import os

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from mslesseg_nnunet.augmentation import GINTransform
from mslesseg_nnunet.losses import DiceFocalLoss, deep_supervision_weights


class HyperparameterHook:
    """Calls ``configure_hyperparameters()`` right after nnU-Net's constructor."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.configure_hyperparameters()

    def configure_hyperparameters(self) -> None:
        """Override, calling ``super()``, to change what nnU-Net's constructor set."""


class DiceFocalLossMixin:
    """Loss: soft Dice + focal (1:1, gamma 2, alpha ``focal_alpha`` if set), deep-supervised.

    ``focal_alpha``: one weight per class, background first, or ``None``.
    """

    focal_gamma = 2.0
    focal_alpha = None

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise ValueError(f"{type(self).__name__}: Dice+Focal supports label-based training only; "
                             "this dataset.json defines regions (use nnUNetTrainer for region training)")
        loss = DiceFocalLoss({"batch_dice": self.configuration_manager.batch_dice, "smooth": 1e-5,
                              "do_bg": False, "ddp": self.is_ddp},
                             gamma=self.focal_gamma, alpha=self.focal_alpha,
                             ignore_label=self.label_manager.ignore_label)
        if self._do_i_compile():
            loss.dc = torch.compile(loss.dc)
        if not self.enable_deep_supervision:
            return loss
        weights = deep_supervision_weights(len(self._get_deep_supervision_scales()),
                                           ddp_without_compile=self.is_ddp and not self._do_i_compile())
        return DeepSupervisionWrapper(loss, weights)


def network_from_registry(name: str) -> staticmethod:
    """A static ``build_network_architecture`` (nnU-Net 2.8 signature) building ``ARCHITECTURES[name]``.

    The networks package is imported only when a network is built, so listing
    or importing trainers never depends on optional packages (mamba-ssm).
    """

    def build_network_architecture(plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        from mslesseg_nnunet.networks import ARCHITECTURES

        return ARCHITECTURES[name](plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision)

    build_network_architecture.__doc__ = f"Build the {name} network from the plans (training and inference)."
    return staticmethod(build_network_architecture)


class MSCSANetworkMixin:
    """Network: U-Net with multi-stage cross-scale attention on the skips (MSCSA)."""

    build_network_architecture = network_from_registry("MSCSA")


def insert_after_spatial(compose, transform) -> None:
    """Insert ``transform`` into a ComposeTransforms right after its spatial transforms."""
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform

    spatial = [i for i, t in enumerate(compose.transforms)
               if isinstance(t, (SpatialTransform, Convert2DTo3DTransform))]
    compose.transforms.insert(spatial[-1] + 1 if spatial else 0, transform)


class GINAugmentationMixin:
    """Augmentation: GIN random-convolution intensity augmentation after the spatial transforms.

    Applied to a sample with probability ``gin_probability``.
    """

    gin_probability = 0.5

    @classmethod
    def get_training_transforms(cls, *args, **kwargs):
        from batchgeneratorsv2.transforms.utils.random import RandomTransform

        transforms = super().get_training_transforms(*args, **kwargs)
        insert_after_spatial(transforms, RandomTransform(GINTransform(), cls.gin_probability))
        return transforms


class AdamOptimizerMixin(HyperparameterHook):
    """Optimiser: Adam at ``adam_lr`` (default 1e-4) with nnU-Net's weight decay and poly schedule."""

    adam_lr = 1e-4

    def configure_hyperparameters(self) -> None:
        super().configure_hyperparameters()
        self.initial_lr = self.adam_lr

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.initial_lr,
                                     weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


class NoDeepSupervisionMixin(HyperparameterHook):
    """Training without deep supervision (the network never returns auxiliary outputs).

    The network is built with ``enable_deep_supervision=False`` and never
    switched, so it needs no ``decoder.deep_supervision`` (MONAI's have none).
    """

    def configure_hyperparameters(self) -> None:
        super().configure_hyperparameters()
        self.enable_deep_supervision = False

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        """Nothing to switch: the network was built without deep supervision."""


class NoMirroringMixin:
    """No mirroring: neither as training augmentation nor as test-time augmentation."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None


SHORT_EPOCHS = 2
SHORT_ITERATIONS = 5
SHORT_VAL_ITERATIONS = 2


def _env_count(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"environment variable {name}={value!r}: expected a positive integer")
    return int(value)


class ShortScheduleMixin(AdamOptimizerMixin):
    """Schedule: few epochs of few iterations, for CPU tests and the demo.

    ``SHORT_EPOCHS`` epochs (env ``MSLESSEG_SHORT_EPOCHS``) x ``SHORT_ITERATIONS``
    training iterations (env ``MSLESSEG_SHORT_ITERS``), and at most
    ``SHORT_VAL_ITERATIONS`` validation iterations per epoch. Optimiser: Adam at
    1e-2 with the poly decay: nnU-Net's SGD (momentum 0.99, 1e-2) leaves the
    all-background start only after hundreds of iterations, Adam within about 100.
    """

    adam_lr = 1e-2

    def configure_hyperparameters(self) -> None:
        super().configure_hyperparameters()
        self.num_epochs = _env_count("MSLESSEG_SHORT_EPOCHS", SHORT_EPOCHS)
        self.num_iterations_per_epoch = _env_count("MSLESSEG_SHORT_ITERS", SHORT_ITERATIONS)
        self.num_val_iterations_per_epoch = min(SHORT_VAL_ITERATIONS, self.num_iterations_per_epoch)
