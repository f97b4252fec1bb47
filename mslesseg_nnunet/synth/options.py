"""Checks of the user-facing options of the generators (one-line UserError each)."""
from __future__ import annotations

import math

import numpy as np

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.vocabulary import SYNTH_SPACING_RANGE


def check_count(name: str, value: int, low: int, high: int) -> int:
    """Return ``value`` if it is an integer in [low, high], else raise UserError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not low <= value <= high:
        raise UserError(f"{name}: must be an integer from {low} to {high}, got {value}")
    return int(value)


def check_spacing(spacing: float) -> float:
    """Return ``spacing`` as float if it is a usable voxel-size factor (in SYNTH_SPACING_RANGE)."""
    try:
        value = float(spacing)
    except (TypeError, ValueError):
        raise UserError(f"--spacing: must be a number of mm, got {spacing!r}") from None
    low, high = SYNTH_SPACING_RANGE
    if not math.isfinite(value) or not low <= value <= high:
        raise UserError(f"--spacing: must be between {low:g} and {high:g}, got {spacing}")
    return value
