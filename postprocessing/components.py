"""Component-level filters on binary lesion masks: size and maximum probability."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from mslesseg_nnunet.components import LESION_CONNECTIVITY, component_sizes, label_components
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


def larger_than(sizes: np.ndarray, limit: float) -> np.ndarray:
    """Which components have strictly more than ``limit`` voxels (``limit`` converted from mm3
    may be off by rounding: a component of ``limit`` voxels within 1e-6 is not larger)."""
    return np.asarray(sizes) > limit + 1e-6


def keep_components(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Boolean mask of the components 1..n for which ``keep[i - 1]`` is true."""
    lookup = np.concatenate([[False], np.asarray(keep, dtype=bool)])
    return lookup[labels]


def keep_larger_than(mask: np.ndarray, min_size: float, unit: str = "voxels",
                     spacing: Sequence[float] = (1.0, 1.0, 1.0),
                     connectivity: int = LESION_CONNECTIVITY) -> np.ndarray:
    """Keep the connected components strictly larger than ``min_size`` (voxels or mm3).

    The rule of Anima's minimum lesion volume (MSSEG-2 evaluation: lesions of
    more than 3 mm3) and of the MSSEG-2 nnU-Net team's filter (components of
    more than 4 mm3): ``min_size`` 0 keeps everything.
    """
    mask = np.asarray(mask) != 0
    limit = size_in_voxels(min_size, unit, spacing)
    if limit <= 0:
        return mask
    labels, n = label_components(mask, connectivity)
    return keep_components(labels, larger_than(component_sizes(labels, n), limit))


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


def find_components(mask: np.ndarray, probability: np.ndarray, connectivity: int = LESION_CONNECTIVITY) -> Components:
    """Components of ``mask`` with their sizes and their maximum of ``probability``."""
    labels, n = label_components(mask, connectivity)
    return Components(labels, component_sizes(labels, n), component_max(labels, n, probability))


def filter_by_max_probability(mask: np.ndarray, probability: np.ndarray, min_probability: float,
                              max_size: float = np.inf, connectivity: int = LESION_CONNECTIVITY) -> np.ndarray:
    """Drop components of at most ``max_size`` voxels whose maximum probability is below
    ``min_probability``; larger components are kept whatever their probability."""
    found = find_components(mask, probability, connectivity)
    return found.select((found.sizes > max_size) | found.confident(min_probability))
