"""Helpers shared by the evaluation tests: writing small masks in the real layouts."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mslesseg_nnunet.nifti import make_header, write_volume


def affine_for(spacing, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """An LAS-like affine (first axis flipped, like MSLesSeg) with the given spacing."""
    aff = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    aff[:3, 3] = origin
    return aff


def write_mask(path: Path, mask: np.ndarray, spacing=(1.0, 1.0, 1.0), dtype=np.uint8,
               origin=(0.0, 0.0, 0.0)) -> Path:
    """Write ``mask`` as a NIfTI file with a simple affine; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(path, np.asarray(mask), make_header(affine_for(spacing, origin), 1, 1), dtype=dtype)
    return path


def blobs(shape, centres, radius, rng=None) -> np.ndarray:
    """Union of balls (voxel units) at ``centres``; optional random voxel noise."""
    grid = np.indices(shape)
    mask = np.zeros(shape, dtype=bool)
    for c in centres:
        mask |= sum((g - ci) ** 2 for g, ci in zip(grid, c)) <= radius ** 2
    if rng is not None:
        mask ^= rng.random(shape) > 0.995
    return mask


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that carry an error (progress bars are redrawn with \\r)."""
    return [part for part in re.split(r"[\r\n]", stderr) if "error:" in part]
