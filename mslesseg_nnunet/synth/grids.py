"""Voxel grids of the synthetic scans: the FSL MNI152 grid and coarser versions of it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mslesseg_nnunet.synth.options import check_spacing

#: Shape and affine of the FSL MNI152 1 mm grid, as in every MSLesSeg file (LAS).
MNI_SHAPE = (182, 218, 182)
MNI_AFFINE = np.array([[-1.0, 0.0, 0.0, 90.0],
                       [0.0, 1.0, 0.0, -126.0],
                       [0.0, 0.0, 1.0, -72.0],
                       [0.0, 0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Grid:
    """A voxel grid: array shape and voxel-to-world (mm) affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def voxel_volume(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))


def mni_grid(spacing: float = 1.0) -> Grid:
    """The FSL MNI152 grid at ``spacing`` mm: same first voxel and field of view, LAS axes.

    ``spacing=1`` is the real MSLesSeg grid; 2 gives FSL's 2 mm grid (91x109x91).
    """
    spacing = check_spacing(spacing)
    shape = tuple(int(math.ceil(n / spacing - 1e-9)) for n in MNI_SHAPE)
    affine = MNI_AFFINE.copy()
    affine[:3, :3] *= spacing
    return Grid(shape, affine)
