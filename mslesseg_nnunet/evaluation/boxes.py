"""Bounding boxes of masks, to restrict work to where the lesions are."""
from __future__ import annotations

import numpy as np


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest box (tuple of slices) holding every non-zero voxel, or None if empty."""
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        slices.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(slices)


def crop_to_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop two boolean masks of one shape to the box around their union.

    Every voxel cut away is background in both, so connected components and
    surface voxels (the outside of the image is background) are unchanged.
    """
    box = bounding_box(a | b)
    if box is None:
        return a, b
    return a[box], b[box]
