"""The QC page of a segmented subject: native FLAIR slices through the largest lesion with
the mask drawn over them, the registration figures and the lesion table. Self-contained
(inline PNG, no network), built from the QC report's figure and page helpers."""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from mslesseg_nnunet.atomic import atomic_file
from mslesseg_nnunet.evaluation.report.figures import COLOURS, _png, error_centre, to_ras
from mslesseg_nnunet.evaluation.report.page import CSP, STYLE, data_uri, table


def mask_figure(flair: np.ndarray, mask: np.ndarray, affine: np.ndarray, title: str) -> bytes:
    """Sagittal, coronal and axial native slices through the largest lesion, mask outlined."""
    (flair, mask), spacing = to_ras(affine, flair, mask)
    centre = error_centre(mask, np.zeros_like(mask))
    inside = flair[flair > 0]
    lo, hi = np.percentile(inside, (1, 99.5)) if inside.size else (0.0, 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8), dpi=72)
    for ax, (name, axis, (h, v)) in zip(axes, (("sagittal", 0, (1, 2)), ("coronal", 1, (0, 2)),
                                               ("axial", 2, (0, 1)))):
        index = [slice(None)] * 3
        index[axis] = centre[axis]
        aspect = spacing[v] / spacing[h]
        ax.imshow(flair[tuple(index)].T, cmap="gray", vmin=lo, vmax=hi, origin="lower",
                  aspect=aspect, interpolation="nearest")
        if mask[tuple(index)].any():
            ax.contour(mask[tuple(index)].T.astype(float), levels=[0.5], colors=COLOURS["FP"],
                       linewidths=0.8)
        ax.set_title(f"{name} {centre[axis]}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def write_qc_page(path: Path, subject: str, flair: np.ndarray, mask: np.ndarray,
                  affine: np.ndarray, rows: list[dict], provenance: dict) -> None:
    """Write the subject's page to ``path`` (atomically)."""
    png = mask_figure(flair, mask, affine, f"{subject}: lesion mask on the native FLAIR")
    registration = table(["registration", "dof", "mutual information"],
                         [[name, r["dof"], r["mutual_information"]]
                          for name, r in provenance["registration"].items()])
    columns = ["lesion_id", "voxels", "volume_mm3", "centroid_x_mm", "centroid_y_mm",
               "centroid_z_mm", "size_class", "mean_flair"]
    lesions = table(columns, [[row[c] for c in columns] for row in rows])
    total = sum(row["volume_mm3"] for row in rows)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{html.escape(subject)} QC</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(subject)}</h1>"
            f"<p>{len(rows)} lesions, {total:.1f} mm3 in native space.</p>"
            f'<img alt="slices" src="{data_uri(png)}">'
            f"<h2>Registration</h2>{registration}<h2>Lesions</h2>{lesions}</body></html>\n")
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(page, encoding="utf-8")
