"""Symmetric surface distances in millimetres (ASSD and HD95).

Definitions (identical to ``medpy.metric.binary.assd`` / ``hd95`` of MedPy
0.5 with ``connectivity=1``):

- the *surface* of a mask is the set of its voxels that have at least one face
  neighbour (6-neighbourhood) outside the mask; voxels on the image border count
  as surface (the outside of the image is background);
- for each surface voxel of one mask, its distance is the Euclidean distance
  (in mm, using the voxel spacing) to the nearest surface voxel of the other
  mask, between voxel centres;
- ASSD is the mean of the pooled distances of both directions (pred -> ref and
  ref -> pred together, so each surface voxel weighs the same);
- HD95 is the 95th percentile (numpy's linear interpolation) of the same pooled
  distances.

Nearest neighbours come from a k-d tree over the surface voxels only, which is
exact (no distance-transform approximation) and independent of the image
size; surface voxels shared by both masks have distance 0 and are not queried.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from mslesseg_nnunet.evaluation.boxes import crop_to_union


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """Voxels of a 3D boolean ``mask`` with a face neighbour outside it (or outside the image)."""
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    inner = padded[1:-1, 1:-1, 1:-1]
    interior = inner.copy()
    for axis in range(3):
        for shift in (0, 2):
            sl = [slice(1, -1)] * 3
            sl[axis] = slice(shift, padded.shape[axis] - 2 + shift)
            interior &= padded[tuple(sl)]
    return inner & ~interior


def _directed(own: np.ndarray, other: np.ndarray, other_tree: cKDTree,
              scale: np.ndarray) -> np.ndarray:
    """Distances from each surface voxel of ``own`` to the nearest of ``other``."""
    shared = np.count_nonzero(own & other)
    rest = np.argwhere(own & ~other) * scale
    far = other_tree.query(rest, k=1)[0] if len(rest) else np.zeros(0)
    return np.concatenate([np.zeros(shared), far])


def symmetric_surface_distances(pred: np.ndarray, ref: np.ndarray,
                                spacing) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each pred surface voxel to ref's surface, and back.

    Both masks must be non-empty; the order of the distances is unspecified.
    """
    pred, ref = crop_to_union(np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool))
    scale = np.asarray(spacing, dtype=np.float64)
    s_pred, s_ref = surface_mask(pred), surface_mask(ref)
    if not s_pred.any() or not s_ref.any():
        raise ValueError("surface distances need two non-empty masks")
    tree_ref = cKDTree(np.argwhere(s_ref) * scale)
    tree_pred = cKDTree(np.argwhere(s_pred) * scale)
    return (_directed(s_pred, s_ref, tree_ref, scale),
            _directed(s_ref, s_pred, tree_pred, scale))


def assd_hd95(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[float, float]:
    """(ASSD, HD95) in mm; both NaN when either mask is empty."""
    if not pred.any() or not ref.any():
        return float("nan"), float("nan")
    pooled = np.concatenate(symmetric_surface_distances(pred, ref, spacing))
    return float(pooled.mean()), float(np.percentile(pooled, 95))
