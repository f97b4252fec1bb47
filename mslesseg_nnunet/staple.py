"""STAPLE consensus of binary masks (Warfield et al. 2004), via SimpleITK.

Shared by the ensembles' ``staple`` rule and ``mslesseg consensus``. Pure
array functions: the inputs are same-shape masks of one case, the
output the per-voxel probability that the hidden true segmentation is
foreground, with each input's estimated sensitivity and specificity.
SimpleITK's ``STAPLEImageFilter`` runs with its defaults (foreground 1, the
prior estimated from the inputs over the whole image, confidence weight 1,
expectation-maximisation until convergence), so the result depends on the
image extent: never crop the masks before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Staple:
    """STAPLE's estimate: foreground probability and each input's performance."""

    probability: np.ndarray
    sensitivity: tuple[float, ...]
    specificity: tuple[float, ...]

    def mask(self, threshold: float) -> np.ndarray:
        """The consensus: probability strictly above ``threshold`` (as postprocessing's binarize)."""
        return self.probability > threshold


def staple(masks: Sequence[np.ndarray]) -> Staple:
    """STAPLE of same-shape binary masks (non-zero = foreground).

    When all masks agree (all empty, all full, or identical), STAPLE's
    estimate is undefined (SimpleITK returns NaN); the consensus is then
    that common mask, with sensitivity and specificity 1.
    """
    import SimpleITK as sitk  # imported here: SimpleITK slows every CLI start

    masks = [np.asarray(m) != 0 for m in masks]
    if not masks:
        raise ValueError("STAPLE needs at least one mask")
    if any(m.shape != masks[0].shape for m in masks):
        raise ValueError("STAPLE needs masks of one shape")
    if all(np.array_equal(m, masks[0]) for m in masks[1:]):
        ones = (1.0,) * len(masks)
        return Staple(masks[0].astype(np.float64), ones, ones)
    filt = sitk.STAPLEImageFilter()
    filt.SetForegroundValue(1.0)
    probability = filt.Execute([sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks])
    return Staple(sitk.GetArrayFromImage(probability).astype(np.float64, copy=False),
                  tuple(filt.GetSensitivity()), tuple(filt.GetSpecificity()))

