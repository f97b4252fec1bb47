"""Multi-size (MSL) and distance-based (DBL) lesion labels, and collapsing them back.

Both labellings are computed on a whole binary mask (a whole scan), never per
training patch, so a lesion cut by a patch border keeps its whole-scan class.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mslesseg_nnunet.components import component_sizes, label_components
from mslesseg_nnunet.errors import UserError

DEFAULT_THRESHOLDS = (100, 1000)
DEFAULT_DISTANCE2 = 4.5


def check_thresholds(thresholds: Sequence[int]) -> tuple[int, ...]:
    """Return ``thresholds`` as positive, strictly increasing ints, else raise UserError."""
    values = tuple(int(t) for t in thresholds)
    if not values or values[0] < 1 or any(b <= a for a, b in zip(values, values[1:])):
        raise UserError(f"--thresholds: need positive, strictly increasing voxel counts, "
                        f"got {','.join(map(str, values)) or 'nothing'}")
    return values


def multi_size_labels(mask: np.ndarray, connectivity: int = 6,
                      thresholds: Sequence[int] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Label each lesion by its voxel count.

    A lesion (connected component of ``mask != 0``) of ``v`` voxels gets
    ``1 + number of thresholds <= v``: with the default (100, 1000), small
    (< 100) = 1, medium (100-999) = 2, large (>= 1000) = 3.

    Returns a uint8 array of ``mask``'s shape (0 = background).
    """
    thresholds = check_thresholds(thresholds)
    components, n = label_components(mask, connectivity)
    sizes = component_sizes(components, n)
    classes = np.zeros(n + 1, dtype=np.uint8)
    classes[1:] = 1 + np.searchsorted(np.asarray(thresholds), sizes, side="right")
    return classes[components]


def distance_labels(mask: np.ndarray, distance2: float = DEFAULT_DISTANCE2) -> np.ndarray:
    """Label lesion voxels as boundary (1) or interior (2).

    A lesion voxel whose squared Euclidean distance (in voxels) to the nearest
    background voxel of the array exceeds ``distance2`` is interior; the
    other lesion voxels are boundary. Returns uint8 of ``mask``'s shape.
    """
    if not distance2 > 0:
        raise UserError(f"--distance2: must be a positive number, got {distance2}")
    lesion = np.asarray(mask) != 0
    out = lesion.astype(np.uint8)
    if lesion.any() and not lesion.all():
        # Squared distances between voxel centres are integers: round away sqrt's error.
        from scipy import ndimage  # imported here: scipy.ndimage slows every CLI start

        squared = np.rint(ndimage.distance_transform_edt(lesion) ** 2)
        out[squared > distance2] = 2
    elif lesion.all():
        out[:] = 2  # no background voxel at all: every voxel is infinitely deep
    return out


def collapse(labels: np.ndarray, lesion_labels: Sequence[int]) -> np.ndarray:
    """Binary uint8 mask of the voxels whose label is one of ``lesion_labels``."""
    return np.isin(labels, np.asarray(list(lesion_labels))).astype(np.uint8)


def size_class_names(thresholds: Sequence[int]) -> list[str]:
    """Names of the multi-size classes, in label order (small/medium/large for two thresholds)."""
    thresholds = check_thresholds(thresholds)
    if len(thresholds) == 2:
        return ["small", "medium", "large"]
    bounds = [0, *thresholds]
    names = [f"size_{lo}_{hi - 1}" for lo, hi in zip(bounds, thresholds)]
    return [*names, f"size_{thresholds[-1]}_plus"]
