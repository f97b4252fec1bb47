"""Smooth random fields (bias fields, warps) built from separable cosine products.

A product of three 1-D cosines costs one multiply-add per voxel, so a field
with a handful of terms is cheap even on the 7 million voxels of a 1 mm scan.
"""
from __future__ import annotations

import numpy as np

from mslesseg_nnunet.synth.grids import Grid


def smooth_field(grid: Grid, rng: np.random.Generator, wavelength_mm: tuple[float, float],
                 n_terms: int = 6) -> np.ndarray:
    """A random smooth field on ``grid`` with unit standard deviation (float32).

    Each term is ``cos(2 pi x/lx + px) cos(2 pi y/ly + py) cos(2 pi z/lz + pz)`` with
    wavelengths drawn log-uniformly in ``wavelength_mm`` (along the grid axes).
    """
    spacing = grid.spacing
    lo, hi = np.log(wavelength_mm[0]), np.log(wavelength_mm[1])
    factors = []
    for axis, n in enumerate(grid.shape):
        wavelength = np.exp(rng.uniform(lo, hi, (n_terms, 1)))
        x = np.arange(n) * spacing[axis]
        factors.append(np.cos(2 * np.pi * x / wavelength + rng.uniform(0, 2 * np.pi, (n_terms, 1))))
    weights = rng.normal(size=(n_terms, 1, 1))
    # sum_k w_k f0_k(x) f1_k(y) f2_k(z) as one matrix product over k.
    plane = (weights * factors[0][:, :, None] * factors[1][:, None, :]).reshape(n_terms, -1)
    field = (plane.T.astype(np.float32) @ factors[2].astype(np.float32)).reshape(grid.shape)
    std = float(field[::3, ::3, ::3].std())
    return field / np.float32(std) if std > 0 else field


def displacement_field(grid: Grid, rng: np.random.Generator, amplitude_mm: float,
                       wavelength_mm: tuple[float, float] = (60.0, 160.0)) -> np.ndarray:
    """A smooth random warp (3, *grid.shape) with per-component RMS ``amplitude_mm``."""
    return np.stack([smooth_field(grid, rng, wavelength_mm) * np.float32(amplitude_mm)
                     for _ in range(3)])
