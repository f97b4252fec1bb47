"""Bounding boxes of masks, to restrict work to where the lesions are."""
from __future__ import annotations

import numpy as np


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest box (tuple of slices) holding every non-zero voxel of a 3D mask, or None.

    One full pass (a projection along the last axis); the last axis is then
    searched only inside the box found for the first two.
    """
    plane = mask.any(axis=2)
    rows = np.flatnonzero(plane.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(plane.any(axis=0))
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    depth = np.flatnonzero(mask[box].any(axis=(0, 1)))
    return (*box, slice(int(depth[0]), int(depth[-1]) + 1))


def crop_to_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop two boolean masks of one shape to the box around their union.

    Every voxel cut away is background in both, so connected components and
    surface voxels (the outside of the image is background) are unchanged.
    """
    box = bounding_box(a | b)
    if box is None:
        return a, b
    return a[box], b[box]
