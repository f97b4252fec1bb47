"""Turning a lesion probability map into a binary mask."""
from __future__ import annotations

import numpy as np

from mslesseg_nnunet.errors import UserError


def check_probability(value: float, name: str) -> float:
    """Return ``value`` as float if it lies in [0, 1], else raise UserError naming ``name``."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise UserError(f"{name}: must be between 0 and 1, got {value}")
    return value


def binarize(probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Voxels whose probability is strictly above ``threshold``.

    Strict, so that a binary two-class softmax at 0.5 gives the same mask as
    nnU-Net's argmax (ties go to background). The comparison is made in the
    map's own precision.
    """
    probability = np.asarray(probability)
    return probability > np.asarray(threshold, dtype=probability.dtype)
