"""Per-lesion tables of one scan, and lesion changes between two timepoints.

Lesions are connected components (default 6-connectivity, as in MSLesSeg's
``clinical_data.csv`` lesion counts and the multi-size labels). Ids are
given by decreasing volume (1 = largest). Centroids are in scanner mm (the
image affine applied to the voxel centroid); bounding boxes are voxel indices,
inclusive, in the file's axis order.
"""
from __future__ import annotations

import cc3d
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mslesseg_nnunet.components import LESION_CONNECTIVITY, component_sizes, label_components
from mslesseg_nnunet.labelling import DEFAULT_THRESHOLDS, check_thresholds, size_class_names

LESION_COLUMNS = ("lesion_id", "voxels", "volume_mm3", "centroid_x_mm", "centroid_y_mm",
                  "centroid_z_mm", "bbox_min_i", "bbox_min_j", "bbox_min_k", "bbox_max_i",
                  "bbox_max_j", "bbox_max_k", "size_class", "mean_flair")

CHANGE_COLUMNS = ("group_id", "status", "baseline_lesions", "followup_lesions",
                  "baseline_volume_mm3", "followup_volume_mm3", "volume_change_mm3",
                  "relative_change", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm")

STATUSES = ("new", "enlarging", "stable", "shrinking", "disappeared")


def ordered_components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Components relabelled 1..n by decreasing size (ties: first in scan order)."""
    labels, n = label_components(mask, connectivity)
    sizes = component_sizes(labels, n)
    lut = np.zeros(n + 1, dtype=np.uint32)
    lut[np.argsort(-sizes, kind="stable") + 1] = np.arange(1, n + 1, dtype=np.uint32)
    return lut[labels], n


def to_mm(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """Voxel coordinates (n, 3) -> scanner mm (n, 3)."""
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def lesion_table(mask: np.ndarray, affine: np.ndarray, connectivity: int = LESION_CONNECTIVITY,
                 thresholds=DEFAULT_THRESHOLDS, flair: np.ndarray | None = None) -> list[dict]:
    """One row per lesion (:data:`LESION_COLUMNS`); ``mean_flair`` NaN without ``flair``."""
    thresholds = check_thresholds(thresholds)
    names = size_class_names(thresholds)
    labels, n = ordered_components(mask, connectivity)
    if n == 0:
        return []
    stats = cc3d.statistics(labels)
    voxels = np.asarray(stats["voxel_counts"][1:n + 1], dtype=np.int64)
    centroids = to_mm(affine, np.asarray(stats["centroids"][1:n + 1], dtype=np.float64))
    classes = np.searchsorted(np.asarray(thresholds), voxels, side="right")
    means = np.full(n, np.nan)
    if flair is not None:
        sums = np.bincount(labels.ravel(), weights=flair.ravel().astype(np.float64),
                           minlength=n + 1)[1:]
        means = sums / voxels
    vox_mm3 = abs(float(np.linalg.det(affine[:3, :3])))
    rows = []
    for k in range(n):
        box = stats["bounding_boxes"][k + 1]
        rows.append({
            "lesion_id": k + 1, "voxels": int(voxels[k]), "volume_mm3": voxels[k] * vox_mm3,
            "centroid_x_mm": centroids[k, 0], "centroid_y_mm": centroids[k, 1],
            "centroid_z_mm": centroids[k, 2],
            "bbox_min_i": box[0].start, "bbox_min_j": box[1].start, "bbox_min_k": box[2].start,
            "bbox_max_i": box[0].stop - 1, "bbox_max_j": box[1].stop - 1,
            "bbox_max_k": box[2].stop - 1,
            "size_class": names[classes[k]], "mean_flair": float(means[k]),
        })
    return rows


def scan_summary(rows: list[dict]) -> dict:
    """Lesion count, total volume and count per size class of a lesion table."""
    classes: dict[str, int] = {}
    for row in rows:
        classes[row["size_class"]] = classes.get(row["size_class"], 0) + 1
    return {"lesions": len(rows), "total_volume_mm3": float(sum(r["volume_mm3"] for r in rows)),
            "lesions_per_size_class": classes}


def classify_change(baseline_mm3: float, followup_mm3: float, min_change: float) -> str:
    """new / disappeared / enlarging / shrinking / stable for one group of lesions.

    A group is enlarging when its volume grows by at least ``min_change`` (a
    fraction of the baseline volume), shrinking when it loses at least that
    fraction, stable otherwise.
    """
    if baseline_mm3 == 0:
        return "new"
    if followup_mm3 == 0:
        return "disappeared"
    change = (followup_mm3 - baseline_mm3) / baseline_mm3
    if change >= min_change:
        return "enlarging"
    if change <= -min_change:
        return "shrinking"
    return "stable"


def overlap_groups(base_labels: np.ndarray, n_base: int, follow_labels: np.ndarray,
                   n_follow: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Group lesions of both timepoints that overlap (directly or through a chain).

    Returns the group index of each baseline lesion, of each follow-up lesion,
    and the number of groups.
    """
    both = (base_labels > 0) & (follow_labels > 0)
    pairs = np.unique(np.stack([base_labels[both], follow_labels[both]]), axis=1)
    size = n_base + n_follow
    rows = pairs[0].astype(np.int64) - 1
    cols = n_base + pairs[1].astype(np.int64) - 1
    graph = coo_matrix((np.ones(rows.size), (rows, cols)), shape=(size, size))
    n_groups, group = connected_components(graph, directed=False)
    return group[:n_base], group[n_base:], int(n_groups)


def lesion_changes(baseline: np.ndarray, followup: np.ndarray, affine: np.ndarray,
                   connectivity: int = LESION_CONNECTIVITY, min_change: float = 0.25) -> list[dict]:
    """Compare lesions of two co-registered timepoints (:data:`CHANGE_COLUMNS`).

    Lesions of both timepoints that overlap by at least one voxel (directly or
    through a chain of overlaps) form one group, so a lesion that splits or
    merges stays one group. A group with no baseline lesion is *new*, one with
    no follow-up lesion *disappeared*; otherwise its total volume decides
    (see :func:`classify_change`). Groups are ordered by status, then by
    decreasing follow-up (else baseline) volume.
    """
    base_labels, n_base = label_components(baseline, connectivity)
    follow_labels, n_follow = label_components(followup, connectivity)
    g_base, g_follow, n_groups = overlap_groups(base_labels, n_base, follow_labels, n_follow)
    vox_mm3 = abs(float(np.linalg.det(affine[:3, :3])))

    def per_group(labels, n, groups):
        sizes = component_sizes(labels, n)
        counts = np.bincount(groups, minlength=n_groups)
        volumes = np.bincount(groups, weights=sizes, minlength=n_groups) * vox_mm3
        lut = np.concatenate([[-1], groups])
        return counts, volumes, lut[labels]

    c_base, v_base, vox_group_base = per_group(base_labels, n_base, g_base)
    c_follow, v_follow, vox_group_follow = per_group(follow_labels, n_follow, g_follow)
    # centroid of each group: its follow-up voxels, or its baseline voxels if none
    where = np.where(vox_group_follow >= 0, vox_group_follow,
                     np.where(vox_group_base >= 0, vox_group_base, -1))
    idx = np.argwhere(where >= 0)
    owner = where[where >= 0]
    weights = np.bincount(owner, minlength=n_groups).astype(np.float64)
    centroids = np.stack([np.bincount(owner, weights=idx[:, a], minlength=n_groups)
                          for a in range(3)], axis=1) / np.maximum(weights, 1)[:, None]
    centroids = to_mm(affine, centroids)
    rows = []
    for g in range(n_groups):
        status = classify_change(v_base[g], v_follow[g], min_change)
        rel = (v_follow[g] - v_base[g]) / v_base[g] if v_base[g] else float("nan")
        rows.append({"status": status, "baseline_lesions": int(c_base[g]),
                     "followup_lesions": int(c_follow[g]),
                     "baseline_volume_mm3": float(v_base[g]),
                     "followup_volume_mm3": float(v_follow[g]),
                     "volume_change_mm3": float(v_follow[g] - v_base[g]),
                     "relative_change": rel, "centroid_x_mm": centroids[g, 0],
                     "centroid_y_mm": centroids[g, 1], "centroid_z_mm": centroids[g, 2]})
    rows.sort(key=lambda r: (STATUSES.index(r["status"]),
                             -(r["followup_volume_mm3"] or r["baseline_volume_mm3"])))
    for i, row in enumerate(rows, start=1):
        row["group_id"] = i
    return rows


def change_summary(rows: list[dict]) -> dict:
    """Number of groups per status."""
    return {status: sum(r["status"] == status for r in rows) for status in STATUSES}
