"""Component-level filters on binary lesion masks: size and maximum probability."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from mslesseg_nnunet.components import component_sizes, label_components
from mslesseg_nnunet.errors import UserError

SIZE_UNITS = ("voxels", "mm3")


def size_in_voxels(size: float, unit: str = "voxels",
                   spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """Convert a component size in ``unit`` (voxels or mm3) to voxels (may be fractional)."""
    if unit not in SIZE_UNITS:
        raise UserError(f"--size-unit: must be one of {', '.join(SIZE_UNITS)}, got {unit!r}")
    if unit == "voxels":
        return float(size)
    return float(size) / float(np.prod(np.asarray(spacing, dtype=np.float64)))


def component_max(labels: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` over each component 1..n (index 0 is component 1)."""
    values = np.asarray(values)
    if n == 0:
        return np.zeros(0, dtype=values.dtype)
    return np.asarray(ndimage.maximum(values, labels, index=np.arange(1, n + 1)), dtype=values.dtype)


def large_enough(sizes: np.ndarray, limit: float) -> np.ndarray:
    """Which components reach ``limit`` voxels (tolerating mm3 -> voxel rounding)."""
    return np.asarray(sizes) >= limit - 1e-9


def keep_components(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Boolean mask of the components 1..n for which ``keep[i - 1]`` is true."""
    lookup = np.concatenate([[False], np.asarray(keep, dtype=bool)])
    return lookup[labels]


def remove_small_components(mask: np.ndarray, min_size: float, unit: str = "voxels",
                            spacing: Sequence[float] = (1.0, 1.0, 1.0),
                            connectivity: int = 6) -> np.ndarray:
    """Drop connected components smaller than ``min_size`` (voxels or mm3).

    A component is kept when its voxel count times the voxel volume (for mm3)
    is at least ``min_size``.
    """
    mask = np.asarray(mask) != 0
    limit = size_in_voxels(min_size, unit, spacing)
    if limit <= 0:
        return mask
    labels, n = label_components(mask, connectivity)
    return keep_components(labels, large_enough(component_sizes(labels, n), limit))


@dataclass
class Components:
    """Connected components of a mask: label image, voxel counts and maximum probability."""

    labels: np.ndarray
    sizes: np.ndarray
    maxima: np.ndarray

    def select(self, keep: np.ndarray) -> np.ndarray:
        """Boolean mask of the components where ``keep`` is true."""
        return keep_components(self.labels, keep)

    def confident(self, min_probability: float) -> np.ndarray:
        """Which components reach ``min_probability`` (compared in the map's precision)."""
        return self.maxima >= np.asarray(min_probability, dtype=self.maxima.dtype)


def find_components(mask: np.ndarray, probability: np.ndarray, connectivity: int = 6) -> Components:
    """Components of ``mask`` with their sizes and their maximum of ``probability``."""
    labels, n = label_components(mask, connectivity)
    return Components(labels, component_sizes(labels, n), component_max(labels, n, probability))


def filter_by_max_probability(mask: np.ndarray, probability: np.ndarray, min_probability: float,
                              max_size: float = np.inf, connectivity: int = 6) -> np.ndarray:
    """Drop components of at most ``max_size`` voxels whose maximum probability is below
    ``min_probability``; larger components are kept whatever their probability."""
    found = find_components(mask, probability, connectivity)
    return found.select((found.sizes > max_size) | found.confident(min_probability))
