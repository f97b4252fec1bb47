"""Tissue outside the brain for scans that are not skull-stripped (MSSEG-2 FLAIRs):
meningeal CSF, skull and scalp as shells at fixed distances from the brain."""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from mslesseg_nnunet.synth.anatomy import template

#: (outer distance from the brain in mm, FLAIR intensity relative to WM) per shell.
_SHELLS = ((2.5, 0.3), (8.0, 0.06), (10.0, 0.5), (15.0, 1.15))
HEAD_MARGIN_MM = 15.0


@functools.lru_cache(maxsize=1)
def brain_distance() -> np.ndarray:
    """Distance (mm) of every template voxel from the brain (0 inside), float32."""
    return ndi.distance_transform_edt(~template().brain).astype(np.float32)


@functools.lru_cache(maxsize=1)
def head_region() -> np.ndarray:
    """Template voxels inside the head (brain plus the shells)."""
    return brain_distance() <= HEAD_MARGIN_MM + 1.0


def head_flair(rng: np.random.Generator) -> np.ndarray:
    """Relative FLAIR signal of the shells around the brain (0 in the brain and outside)."""
    dist = brain_distance()
    out = np.zeros(dist.shape, dtype=np.float32)
    inner = 0.0
    for outer, value in _SHELLS:
        shell = (dist > inner) & (dist <= outer)
        out[shell] = value * rng.uniform(0.85, 1.15)
        inner = outer
    return ndi.gaussian_filter(out, 0.8)
