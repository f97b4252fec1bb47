"""PNG figures of the QC report (matplotlib, Agg backend, returned as bytes).

Arrays are reoriented to the closest RAS axes first, so slices are drawn in
the neurological convention (patient left on the image left, superior up),
with the aspect ratio of the voxel spacing.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from mslesseg_nnunet.components import component_sizes, label_components  # noqa: E402

COLOURS = {"TP": "#1b9e77", "FP": "#d95f02", "FN": "#7570b3"}  # colour-blind safe (Dark2)
OVERLAY = ListedColormap([(0, 0, 0, 0)] + [COLOURS[k] for k in ("TP", "FP", "FN")])


def to_ras(affine: np.ndarray, *arrays: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Reorient arrays to the closest RAS axes; returns them and the permuted spacing."""
    ornt = nib.orientations.io_orientation(affine)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    out = [nib.orientations.apply_orientation(a, ornt) for a in arrays]
    return out, spacing[ornt[:, 0].astype(int)]


def error_centre(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """A voxel inside the largest error region (largest 26-connected FP or FN component).

    Without any error, the largest reference lesion; without lesions, the centre.
    """
    for region in (pred & ~ref, ~pred & ref, ref):
        best = _largest_component(region)
        if best is not None:
            return best
    return tuple(s // 2 for s in pred.shape)


def _largest_component(mask: np.ndarray) -> tuple[int, int, int] | None:
    labels, n = label_components(mask, connectivity=26)
    if n == 0:
        return None
    voxels = np.argwhere(labels == int(component_sizes(labels, n).argmax()) + 1)
    centroid = voxels.mean(axis=0)
    nearest = voxels[np.argmin(((voxels - centroid) ** 2).sum(axis=1))]  # stays inside it
    return tuple(int(v) for v in nearest)


def overlay_codes(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """0 background, 1 TP, 2 FP, 3 FN."""
    codes = np.zeros(pred.shape, dtype=np.uint8)
    codes[pred & ref] = 1
    codes[pred & ~ref] = 2
    codes[~pred & ref] = 3
    return codes


def case_figure(flair: np.ndarray, pred: np.ndarray, ref: np.ndarray, affine: np.ndarray,
                title: str) -> bytes:
    """Sagittal, coronal and axial slices through the largest error, FLAIR underneath."""
    (flair, pred, ref), spacing = to_ras(affine, flair, pred, ref)
    centre = error_centre(pred, ref)
    codes = overlay_codes(pred, ref)
    brain = flair[flair > 0]
    lo, hi = np.percentile(brain, (1, 99.5)) if brain.size else (0.0, 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8), dpi=72)
    views = (("sagittal", 0, (1, 2)), ("coronal", 1, (0, 2)), ("axial", 2, (0, 1)))
    for ax, (name, axis, (h, v)) in zip(axes, views):
        index = [slice(None)] * 3
        index[axis] = centre[axis]
        img, code = flair[tuple(index)].T, codes[tuple(index)].T
        aspect = spacing[v] / spacing[h]
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect,
                  interpolation="nearest")
        ax.imshow(code, cmap=OVERLAY, vmin=0, vmax=3, origin="lower", aspect=aspect,
                  interpolation="nearest", alpha=0.75)
        ax.set_title(f"{name} {centre[axis]}", fontsize=9)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    fig.legend(handles, list(COLOURS), loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def box_plots(rows: list[dict], metrics: list[str], ylim: tuple | None = None) -> bytes:
    """One box plot per metric (NaN values left out), optionally on fixed y limits."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.6 * len(metrics) + 1, 3.4), dpi=72)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        values = np.array([r[metric] for r in rows], dtype=float)
        values = values[~np.isnan(values)]
        ax.boxplot([values] if values.size else [[np.nan]], widths=0.6)
        ax.scatter(np.ones(values.size), values, s=10, alpha=0.6, color=COLOURS["TP"])
        ax.set_title(metric, fontsize=9)
        ax.set_xticks([])
        if ylim is not None:
            ax.set_ylim(*ylim)
    fig.tight_layout()
    return _png(fig)


def dice_vs_load(rows: list[dict]) -> bytes:
    """Scatter of per-case Dice against the reference lesion load (mm3, log scale)."""
    load = np.array([r["ref_volume_mm3"] for r in rows], dtype=float)
    dice = np.array([r["dice"] for r in rows], dtype=float)
    keep = (load > 0) & ~np.isnan(dice)
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=72)
    ax.scatter(load[keep], dice[keep], color=COLOURS["TP"])
    for r, x, y, k in zip(rows, load, dice, keep):
        if k:
            ax.annotate(r["case"], (x, y), fontsize=7, alpha=0.7)
    if keep.any():
        ax.set_xscale("log")
    ax.set_xlabel("reference lesion load (mm3)")
    ax.set_ylabel("Dice")
    ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
