"""nnU-Net's predictor with a choice of sliding-window blending (``blending.BLENDINGS``).

``gaussian`` leaves every method of ``nnUNetPredictor`` as it is. The others
override only the sliding-window loop: each window's softmax probability
``p_i`` (mirrored passes: nnU-Net's mean of their logits) is weighted by
``alpha_i`` (1, the patch weight, or each 2x2x2 cell's weight) and, as in the
paper's eq. 1-2, divided by the *number* of windows covering the voxel::

    P_c = sum_i alpha_i p_ic / sum_i A_i     for every lesion class c,
    P_background = 1 - sum_c P_c

so the probability mass that distrusted windows withhold goes to background
(alpha = 1 everywhere gives the plain mean of the windows). Folds are averaged
as probabilities; the result is returned as log-probabilities, which nnU-Net's
export turns back into these probabilities with its softmax. Memory: the same
two half-precision accumulators as nnU-Net; weights exist per window only.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from batchgenerators.utilities.file_and_folder_operations import save_json
from nnunetv2.inference.export_prediction import export_prediction_from_logits
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from tqdm import tqdm

from mslesseg_nnunet.ensembles.blending import BLENDINGS, ORACLE_BLENDINGS
from mslesseg_nnunet.networks.cib_heads import cib_heads_of, dice_targets, expand_cells

PROBABILITY_FLOOR = 1e-6


class BlendingPredictor(nnUNetPredictor):
    """``nnUNetPredictor(**kwargs)`` blending windows by ``blending``.

    For the oracles, ``labels`` holds the current case's label map in the
    preprocessed geometry (:meth:`predict_files_with_labels` sets it).
    """

    def __init__(self, blending: str = "gaussian", **kwargs):
        if blending not in BLENDINGS:
            raise ValueError(f"blending {blending!r}: expected one of {', '.join(BLENDINGS)}")
        super().__init__(**kwargs)
        self.blending = blending
        self.labels: torch.Tensor | None = None

    @torch.inference_mode()
    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        prediction = super().predict_logits_from_preprocessed_data(data)
        if self.blending == "gaussian":
            return prediction
        return torch.log(prediction.float().clamp_min(PROBABILITY_FLOOR))

    @torch.inference_mode()
    def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers,
                                                       do_on_device: bool = True):
        """Blended probabilities (not logits) of the padded ``data`` for every blending but gaussian."""
        if self.blending == "gaussian":
            return super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)
        device = self.device if do_on_device else torch.device("cpu")
        data = data.to(device)
        labels = self._padded_labels(data.shape[1:]) if self.blending in ORACLE_BLENDINGS else None
        blended = torch.zeros((self.label_manager.num_segmentation_heads, *data.shape[1:]),
                              dtype=torch.half, device=device)
        counts = torch.zeros(data.shape[1:], dtype=torch.half, device=device)
        for sl in tqdm(slicers, disable=not self.allow_tqdm):
            logits, patch_dice, grid_dice = self._predict_window(data[sl][None].to(self.device))
            window_labels = None if labels is None else labels[sl[1:]].to(self.device)
            weight = self._window_weight(logits, patch_dice, grid_dice, window_labels)
            probabilities = torch.softmax(logits.float(), 0)[1:] * weight
            blended[(slice(1, None), *sl[1:])] += probabilities.to(device)
            counts[sl[1:]] += 1
        lesion = blended[1:]
        torch.div(lesion, counts, out=lesion)
        blended[0] = 1 - lesion.sum(0)
        return blended

    def _predict_window(self, x: torch.Tensor):
        """Mean over the mirrored passes of the logits (C, *window) and of the heads' Dice
        (each pass's 2x2x2 grid flipped back); heads' values are None without heads."""
        axes = self.allowed_mirroring_axes if self.use_mirroring else None
        axes = [a + 2 for a in axes] if axes else []
        passes = [()] + [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
        heads = cib_heads_of(self.network)
        logits = patch = grid = 0
        for flip in passes:
            logits = logits + _flip(self.network(_flip(x, flip)), flip)
            if heads is not None:
                patch = patch + heads.patch_dice
                grid = grid + _flip(heads.grid_dice, [a - 1 for a in flip])
        n = len(passes)
        if heads is None:
            return logits[0] / n, None, None
        return logits[0] / n, patch[0] / n, grid[0] / n

    def _window_weight(self, logits, patch_dice, grid_dice, labels):
        """alpha of every voxel of the window (a scalar or a map of the window's shape)."""
        if self.blending == "average":
            return 1.0
        if self.blending == "cib-patch":
            return patch_dice.float()
        if self.blending == "cib-grid":
            return expand_cells(grid_dice.float(), logits.shape[1:])
        patch_true, grid_true = dice_targets(logits[None], labels[None, None])
        if self.blending == "oracle-patch":
            return patch_true[0]
        return expand_cells(grid_true[0], logits.shape[1:])

    def _padded_labels(self, shape) -> torch.Tensor:
        if self.labels is None:
            raise RuntimeError(f"blending {self.blending}: no labels set (use predict_files_with_labels)")
        labels = pad_nd_image(self.labels[None], self.configuration_manager.patch_size, "constant",
                              {"value": 0})[0]
        if tuple(labels.shape) != tuple(shape):
            raise RuntimeError(f"labels of shape {tuple(labels.shape)} do not match the image {tuple(shape)}")
        return labels

    def predict_files_with_labels(self, image_lists: Sequence[Sequence[str]], label_files: Sequence[str],
                                  outputs: Sequence[str], save_probabilities: bool = True) -> None:
        """Predict case by case with each case's labels preprocessed with its images by
        nnU-Net's own ``run_case`` (same crop and resampling); cases whose ``.npz`` exists
        are skipped. Writes what ``predict_from_files`` writes (and its dataset/plans json)."""
        folder = Path(outputs[0]).parent
        save_json(self.dataset_json, str(folder / "dataset.json"), sort_keys=False)
        save_json(self.plans_manager.plans, str(folder / "plans.json"), sort_keys=False)
        preprocessor = self.configuration_manager.preprocessor_class(verbose=self.verbose)
        todo = [job for job in zip(image_lists, label_files, outputs)
                if not Path(f"{job[2]}.npz").is_file()]
        for images, label_file, output in tqdm(todo, desc="oracle", unit="case"):
            data, seg, properties = preprocessor.run_case(list(images), label_file, self.plans_manager,
                                                          self.configuration_manager, self.dataset_json)
            self.labels = torch.from_numpy(np.asarray(seg[0], dtype=np.int16))
            try:
                prediction = self.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
            finally:
                self.labels = None
            export_prediction_from_logits(prediction, properties, self.configuration_manager,
                                          self.plans_manager, self.dataset_json, output, save_probabilities)


def _flip(x: torch.Tensor, axes) -> torch.Tensor:
    return torch.flip(x, list(axes)) if axes else x
