"""MSLesSeg metrics (data descriptor definitions), one case at a time.

Voxel-wise: DSC = 2|P∩R| / (|P|+|R|), TPR = |P∩R|/|R|, PPV = |P∩R|/|P|,
AVD = |V_P - V_R| / V_R. Surface: ASSD and HD95 in mm (see
:mod:`mslesseg_nnunet.evaluation.surface`).

Lesions are the connected components at ``connectivity`` (default 26).
Lesion-hit rule: a reference lesion is *detected* when at least one of its
voxels is predicted (overlap >= 1 voxel); a predicted lesion is a *false
positive* when none of its voxels is in the reference. LTPR = detected
reference lesions / reference lesions; LFPR = false-positive predicted
lesions / predicted lesions.

Undefined values are NaN (an empty cell in the CSV): with an empty prediction
and a non-empty reference, Dice and TPR are 0, LTPR is 0, and PPV, LFPR, ASSD
and HD95 are NaN; ratios over an empty reference (TPR, LTPR, AVD, and Dice
when both masks are empty) are NaN.
"""
from __future__ import annotations

import numpy as np

from mslesseg_nnunet.components import label_components
from mslesseg_nnunet.evaluation.boxes import crop_to_union
from mslesseg_nnunet.evaluation.surface import assd_hd95

COLUMNS = ("dice", "tpr", "ppv", "ltpr", "lfpr", "avd", "assd_mm", "hd95_mm",
           "n_ref_lesions", "n_pred_lesions", "ref_volume_mm3", "pred_volume_mm3")

NAN = float("nan")


def ratio(num: float, den: float) -> float:
    """num / den, NaN when den is 0."""
    return float(num) / float(den) if den else NAN


def voxel_volume(spacing) -> float:
    """Voxel volume in mm3 from the spacing (double product of the three values)."""
    sx, sy, sz = (float(s) for s in spacing)
    return sx * sy * sz


def lesion_hits(pred: np.ndarray, ref: np.ndarray, connectivity: int) -> dict:
    """Lesion counts under the >= 1 voxel overlap rule.

    Returns ``n_ref``, ``n_pred``, ``ref_detected`` (reference lesions with at
    least one predicted voxel) and ``pred_false`` (predicted lesions with no
    reference voxel).
    """
    ref_labels, n_ref = label_components(ref, connectivity)
    pred_labels, n_pred = label_components(pred, connectivity)
    both = ref & pred
    ref_detected = np.unique(ref_labels[both]).size
    pred_true = np.unique(pred_labels[both]).size
    return {"n_ref": n_ref, "n_pred": n_pred, "ref_detected": int(ref_detected),
            "pred_false": n_pred - int(pred_true)}


def score_case(pred: np.ndarray, ref: np.ndarray, spacing, connectivity: int = 26) -> dict:
    """All MSLesSeg metrics of one binary prediction against its reference.

    Parameters
    ----------
    pred, ref : ndarray
        Masks of the same shape (non-zero = lesion).
    spacing : sequence of 3 floats
        Voxel size in mm along the array axes.
    connectivity : {6, 18, 26}
        Neighbourhood that defines a lesion.

    Returns
    -------
    dict
        Keys :data:`COLUMNS`; undefined values are NaN.
    """
    pred, ref = crop_to_union(np.asarray(pred) != 0, np.asarray(ref) != 0)
    n_pred_vox = int(np.count_nonzero(pred))
    n_ref_vox = int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(pred & ref))
    hits = lesion_hits(pred, ref, connectivity)
    assd, hd95 = assd_hd95(pred, ref, spacing)
    vox = voxel_volume(spacing)
    return {
        "dice": ratio(2 * tp, n_pred_vox + n_ref_vox),
        "tpr": ratio(tp, n_ref_vox),
        "ppv": ratio(tp, n_pred_vox),
        "ltpr": ratio(hits["ref_detected"], hits["n_ref"]),
        "lfpr": ratio(hits["pred_false"], hits["n_pred"]),
        "avd": ratio(abs(n_pred_vox - n_ref_vox), n_ref_vox),
        "assd_mm": assd,
        "hd95_mm": hd95,
        "n_ref_lesions": hits["n_ref"],
        "n_pred_lesions": hits["n_pred"],
        "ref_volume_mm3": n_ref_vox * vox,
        "pred_volume_mm3": n_pred_vox * vox,
    }
