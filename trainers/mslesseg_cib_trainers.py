"""Calibrated Inter-patch Blending (CIB) trainers: Dice-predicting heads on our U-Nets.

``CIBHeadsMixin`` adds the patch and grid heads (``mslesseg_nnunet.networks.cib_heads``)
to whatever network the rest of the trainer builds from the plans, trains them
with ``CIBLoss`` on the paper's schedule, and logs lambda1, lambda2 and the
heads' MSE every epoch (``training_log``, ``progress_cib.png`` next to nnU-Net's
``progress.png``). Predict with ``mslesseg predict --blending cib-grid`` (the
default for these models); stock ``nnUNetv2_predict`` still runs them with
Gaussian blending, heads unused. Each trainer has a ``...Short`` twin.
"""
from __future__ import annotations

from os.path import join

import numpy as np
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from mslesseg_nnunet.cib_loss import CIBLoss
from mslesseg_nnunet.networks.cib_heads import attach_cib_heads, cib_heads_of
from mslesseg_nnunet.robustness_mixins import TverskyLossMixin
from mslesseg_nnunet.trainer_mixins import DiceFocalLossMixin, HyperparameterHook, \
    MSCSANetworkMixin, NoMirroringMixin, ShortScheduleMixin

CIB_LOG_KEYS = ("cib_lambda_patch", "cib_lambda_grid", "cib_patch_mse_tr", "cib_grid_mse_tr",
                "cib_patch_mse_val", "cib_grid_mse_val")


class CIBHeadsMixin(HyperparameterHook):
    """Network, loss and logging of CIB: heads on the plans' network, seg. loss + lambda-weighted MSE.

    Schedule (paper): lambda1 = ``cib_lambda_patch`` throughout; lambda2 =
    ``cib_lambda_grid`` from epoch ``cib_grid_from * num_epochs`` on (0 before:
    first half patch head only). Subclass to change them.
    ``cib_patch_from_encoder = True`` feeds the patch head the deepest encoder
    features as the paper does (default: the full-resolution decoder features,
    docs/cib.md). torch.compile is off (the heads read features through forward hooks).
    """

    cib_lambda_patch = 1.0
    cib_lambda_grid = 1.0
    cib_grid_from = 0.5
    cib_patch_from_encoder = False

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        network = super().build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                     num_output_channels, enable_deep_supervision)
        return attach_cib_heads(network, cls.cib_patch_from_encoder)

    def configure_hyperparameters(self) -> None:
        super().configure_hyperparameters()
        for key in CIB_LOG_KEYS:
            self.logger.local_logger.my_fantastic_logging.setdefault(key, [])

    def _do_i_compile(self) -> bool:
        return False

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise ValueError(f"{type(self).__name__}: CIB supports label-based training only; "
                             "this dataset.json defines regions")
        return CIBLoss(super()._build_loss(), cib_heads_of(self.network), self.label_manager.ignore_label)

    def cib_lambdas(self, epoch: int) -> tuple[float, float]:
        """(lambda1, lambda2) of ``epoch``."""
        grid = self.cib_lambda_grid if epoch >= self.cib_grid_from * self.num_epochs else 0.0
        return self.cib_lambda_patch, grid

    def on_epoch_start(self):
        super().on_epoch_start()
        self.loss.lambda_patch, self.loss.lambda_grid = self.cib_lambdas(self.current_epoch)
        self.logger.log("cib_lambda_patch", self.loss.lambda_patch, self.current_epoch)
        self.logger.log("cib_lambda_grid", self.loss.lambda_grid, self.current_epoch)

    def train_step(self, batch: dict) -> dict:
        return {**super().train_step(batch), **self._mse_terms()}

    def validation_step(self, batch: dict) -> dict:
        return {**super().validation_step(batch), **self._mse_terms()}

    def _mse_terms(self) -> dict:
        return {f"cib_{k}": v for k, v in self.loss.last.items()}

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        self._log_mse(train_outputs, "tr")

    def on_validation_epoch_end(self, val_outputs):
        super().on_validation_epoch_end(val_outputs)
        self._log_mse(val_outputs, "val")

    def _log_mse(self, outputs: list[dict], split: str) -> None:
        for head in ("patch", "grid"):
            value = float(np.mean([o[f"cib_{head}_mse"] for o in outputs]))
            self.logger.log(f"cib_{head}_mse_{split}", value, self.current_epoch)

    def on_epoch_end(self):
        value = {k: self.logger.get_value(k, step=-1) for k in CIB_LOG_KEYS}
        self.print_to_log_file(
            f"CIB lambda1 {value['cib_lambda_patch']} lambda2 {value['cib_lambda_grid']}; heads' MSE "
            f"train patch {value['cib_patch_mse_tr']:.4f} grid {value['cib_grid_mse_tr']:.4f}, "
            f"val patch {value['cib_patch_mse_val']:.4f} grid {value['cib_grid_mse_val']:.4f}")
        super().on_epoch_end()
        if self.local_rank == 0:
            plot_cib_progress(self.logger.local_logger.my_fantastic_logging, self.output_folder)


def plot_cib_progress(logged: dict, output_folder: str) -> None:
    """``progress_cib.png``: the heads' MSE (train, val) and lambda1 / lambda2 per epoch."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, (mse, lambdas) = plt.subplots(2, 1, figsize=(12, 10), sharex=True)
    for key in CIB_LOG_KEYS[2:]:
        mse.plot(logged[key], label=key[len("cib_"):], ls="-" if key.endswith("tr") else "--")
    mse.set_ylabel("heads' MSE")
    mse.legend()
    for key in CIB_LOG_KEYS[:2]:
        lambdas.plot(logged[key], label=key[len("cib_"):])
    lambdas.set_xlabel("epoch")
    lambdas.set_ylabel("lambda")
    lambdas.legend()
    fig.tight_layout()
    fig.savefig(join(output_folder, "progress_cib.png"))
    plt.close(fig)


class nnUNetTrainerCIB(CIBHeadsMixin, nnUNetTrainer):
    """nnU-Net's network from the plans with CIB Dice-predicting heads (patch + 2x2x2 grid), Dice + CE."""


class nnUNetTrainerCIBDiceFocal(CIBHeadsMixin, DiceFocalLossMixin, nnUNetTrainer):
    """nnU-Net's network with CIB heads, Dice + Focal loss."""


class nnUNetTrainerMSCSACIB(CIBHeadsMixin, MSCSANetworkMixin, nnUNetTrainer):
    """MSCSA network with CIB heads, Dice + CE."""


class nnUNetTrainerCIBShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerCIB):
    """nnU-Net's network from the plans with CIB Dice-predicting heads (patch + 2x2x2 grid), Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerCIBDiceFocalShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerCIBDiceFocal):
    """nnU-Net's network with CIB heads, Dice + Focal loss; short schedule, no mirroring."""


class nnUNetTrainerMSCSACIBShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerMSCSACIB):
    """MSCSA network with CIB heads, Dice + CE; short schedule, no mirroring."""


class nnUNetTrainerCIBTversky(CIBHeadsMixin, TverskyLossMixin, nnUNetTrainer):
    """nnU-Net's network with CIB heads, Tversky + CE loss (the CIB paper's best-F1 combination)."""


class nnUNetTrainerCIBTverskyShort(ShortScheduleMixin, NoMirroringMixin, nnUNetTrainerCIBTversky):
    """nnU-Net's network with CIB heads, Tversky + CE loss; short schedule, no mirroring."""
