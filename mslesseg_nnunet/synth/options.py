"""Checks of the user-facing options of the generators (one-line UserError each)."""
from __future__ import annotations

import math

import numpy as np

from mslesseg_nnunet.errors import UserError


def check_count(name: str, value: int, low: int, high: int) -> int:
    """Return ``value`` if it is an integer in [low, high], else raise UserError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not low <= value <= high:
        raise UserError(f"{name}: must be an integer from {low} to {high}, got {value}")
    return int(value)


def check_spacing(spacing: float) -> float:
    """Return ``spacing`` as float if it is a usable voxel-size factor (1 to 8)."""
    try:
        value = float(spacing)
    except (TypeError, ValueError):
        raise UserError(f"--spacing: must be a number of mm, got {spacing!r}") from None
    if not math.isfinite(value) or not 1.0 <= value <= 8.0:
        raise UserError(f"--spacing: must be between 1 and 8, got {spacing}")
    return value
