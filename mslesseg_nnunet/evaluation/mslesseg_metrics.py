"""MSLesSeg metrics (data descriptor definitions), one case at a time.

Voxel-wise: DSC = 2|P∩R| / (|P|+|R|), TPR = |P∩R|/|R|, PPV = |P∩R|/|P|,
AVD = |V_P - V_R| / V_R. Surface: ASSD and HD95 in mm (see
:mod:`mslesseg_nnunet.evaluation.surface`).

Lesions are the connected components at ``connectivity`` (default 6).
Lesion-hit rule: a reference lesion is *detected* when at least one of its
voxels is predicted (overlap >= 1 voxel); a predicted lesion is a *false
positive* when none of its voxels is in the reference. LTPR = detected
reference lesions / reference lesions; LFPR = false-positive predicted
lesions / predicted lesions.

Undefined values are NaN (an empty cell in the CSV): with an empty prediction
and a non-empty reference, Dice and TPR are 0, LTPR is 0, and PPV, LFPR, ASSD
and HD95 are NaN; ratios over an empty reference (TPR, LTPR, AVD, and Dice
when both masks are empty) are NaN.

With ``size_bins`` (what ``mslesseg evaluate`` passes) the row also holds
:data:`ADDED_COLUMNS` and the per-size columns of
:mod:`~mslesseg_nnunet.evaluation.detection`: IoU, specificity, AVD in %,
ASSD and HD95 in voxels (spacing 1), lesion F1 (precision 1 - LFPR, recall
LTPR) and FDR, which under the one-voxel rule equals LFPR.
"""
from __future__ import annotations

import numpy as np

from mslesseg_nnunet.components import LESION_CONNECTIVITY, component_sizes, label_components
from mslesseg_nnunet.evaluation.boxes import crop_to_union
from mslesseg_nnunet.evaluation.detection import lesion_f1, size_columns, size_scores
from mslesseg_nnunet.evaluation.surface import assd_hd95
from mslesseg_nnunet.evaluation.voxel_metrics import (apply_empty_dice, overlap_counts, ratio,
                                                      voxel_scores)

COLUMNS = ("dice", "tpr", "ppv", "ltpr", "lfpr", "avd", "assd_mm", "hd95_mm",
           "n_ref_lesions", "n_pred_lesions", "ref_volume_mm3", "pred_volume_mm3")
ADDED_COLUMNS = ("iou", "specificity", "avd_pct", "assd_vox", "hd95_vox", "lesion_f1", "fdr")


def columns(size_bins: str | None = None) -> tuple[str, ...]:
    """The keys of :func:`score_case`'s row for ``size_bins``."""
    return COLUMNS if size_bins is None else (*COLUMNS, *ADDED_COLUMNS, *size_columns(size_bins))


def voxel_volume(spacing) -> float:
    """Voxel volume in mm3 from the spacing (double product of the three values)."""
    sx, sy, sz = (float(s) for s in spacing)
    return sx * sy * sz


def lesion_hits(pred: np.ndarray, ref: np.ndarray, connectivity: int) -> dict:
    """Lesion counts and outcomes under the >= 1 voxel overlap rule.

    Returns ``n_ref``, ``n_pred``, ``ref_detected`` (reference lesions with at
    least one predicted voxel), ``pred_false`` (predicted lesions with no
    reference voxel), and per lesion ``ref_sizes``/``ref_hit`` and
    ``pred_sizes``/``pred_hit`` (voxel count; detected / true positive).
    """
    ref_labels, n_ref = label_components(ref, connectivity)
    pred_labels, n_pred = label_components(pred, connectivity)
    both = ref & pred
    ref_hit = np.zeros(n_ref + 1, dtype=bool)
    ref_hit[ref_labels[both]] = True
    pred_hit = np.zeros(n_pred + 1, dtype=bool)
    pred_hit[pred_labels[both]] = True
    return {"n_ref": n_ref, "n_pred": n_pred, "ref_detected": int(ref_hit[1:].sum()),
            "pred_false": n_pred - int(pred_hit[1:].sum()),
            "ref_sizes": component_sizes(ref_labels, n_ref), "ref_hit": ref_hit[1:],
            "pred_sizes": component_sizes(pred_labels, n_pred), "pred_hit": pred_hit[1:]}


def score_case(pred: np.ndarray, ref: np.ndarray, spacing, connectivity: int = LESION_CONNECTIVITY,
               size_bins: str | None = None, empty_dice: str = "nan") -> dict:
    """All MSLesSeg metrics of one binary prediction against its reference.

    Parameters
    ----------
    pred, ref : ndarray
        Masks of the same shape (non-zero = lesion).
    spacing : sequence of 3 floats
        Voxel size in mm along the array axes.
    connectivity : {6, 18, 26}
        Neighbourhood that defines a lesion.
    size_bins : {None, "msl", "cib"}
        With a size-bin set, also the added metrics (see the module docstring).
    empty_dice : {"nan", "one-zero"}
        Dice and IoU on an empty reference (see :func:`apply_empty_dice`).

    Returns
    -------
    dict
        Keys :func:`columns`; undefined values are NaN.
    """
    n_total = np.asarray(pred).size
    pred, ref = crop_to_union(np.asarray(pred) != 0, np.asarray(ref) != 0)
    tp, n_pred_vox, n_ref_vox = overlap_counts(pred, ref)
    voxel = voxel_scores(tp, n_pred_vox, n_ref_vox, n_total)
    hits = lesion_hits(pred, ref, connectivity)
    assd, hd95 = assd_hd95(pred, ref, spacing)
    vox = voxel_volume(spacing)
    lfpr = ratio(hits["pred_false"], hits["n_pred"])
    row = {
        "dice": voxel["dice"],
        "tpr": voxel["tpr"],
        "ppv": voxel["ppv"],
        "ltpr": ratio(hits["ref_detected"], hits["n_ref"]),
        "lfpr": lfpr,
        "avd": voxel["avd"],
        "assd_mm": assd,
        "hd95_mm": hd95,
        "n_ref_lesions": hits["n_ref"],
        "n_pred_lesions": hits["n_pred"],
        "ref_volume_mm3": n_ref_vox * vox,
        "pred_volume_mm3": n_pred_vox * vox,
    }
    if size_bins is not None:
        assd_vox, hd95_vox = assd_hd95(pred, ref, (1.0, 1.0, 1.0))
        row.update(iou=voxel["iou"], specificity=voxel["specificity"],
                   avd_pct=voxel["avd_pct"], assd_vox=assd_vox, hd95_vox=hd95_vox,
                   lesion_f1=lesion_f1(1.0 - lfpr, row["ltpr"]), fdr=lfpr,
                   **size_scores(size_bins, hits["ref_sizes"], hits["ref_hit"],
                                 hits["pred_sizes"], hits["pred_hit"]))
    return apply_empty_dice(row, n_pred_vox, n_ref_vox, empty_dice)
