"""Sampling template-space volumes at the voxels of one scan (restricted to the head),
and rendering one modality of a scan."""
from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from mslesseg_nnunet.synth.anatomy import sample, template
from mslesseg_nnunet.synth.contrasts import Contrast, acquire, compose
from mslesseg_nnunet.synth.grids import MNI_SHAPE, Grid
from mslesseg_nnunet.synth.regions import regions


@functools.lru_cache(maxsize=2)
def support(margin_mm: int) -> np.ndarray:
    """Template brain dilated by ``margin_mm``: voxels outside it are never sampled."""
    return ndi.binary_dilation(template().brain, iterations=margin_mm)


class Sampler:
    """Linear sampling of template volumes at a scan's template coordinates.

    Only scan voxels whose template position falls in ``region`` are sampled
    (the rest stay 0); the test is done on every second voxel along each axis.
    """

    def __init__(self, coords: np.ndarray, region: np.ndarray):
        self.shape = coords.shape[1:]
        coarse = np.rint(coords[:, ::2, ::2, ::2].reshape(3, -1)).astype(np.int32)
        np.clip(coarse, 0, np.array(MNI_SHAPE, dtype=np.int32)[:, None] - 1, out=coarse)
        hit = region[coarse[0], coarse[1], coarse[2]].reshape(coords[0, ::2, ::2, ::2].shape)
        for axis, n in enumerate(self.shape):
            hit = np.repeat(hit, 2, axis=axis).take(np.arange(n), axis=axis)
        self.voxels = np.flatnonzero(hit)
        self.points = coords.reshape(3, -1)[:, self.voxels]

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        values = np.zeros(self.shape, dtype=np.float32)
        values.reshape(-1)[self.voxels] = sample(volume, self.points)
        return values


def render_modality(contrast: Contrast, delta: np.ndarray, sampler: Sampler, grid: Grid,
                    rng: np.random.Generator, texture: np.ndarray,
                    extra: np.ndarray | None = None) -> np.ndarray:
    """One modality of one scan: compose on the template, sample, then acquire (float32)."""
    clean = compose(template(), contrast, delta, regions().ventricle_band, extra)
    return acquire(sampler(clean), grid, contrast, rng, texture)
