"""MSSEG-2 scoring, reproducing ``animaSegPerfAnalyzer -s -l`` (Anima-Public).

Rules, as in ``animaSegPerfCAnalyzer.cxx``:

- Dice = 2J / (1 + J) with J the Jaccard index of the full masks (no filter).
- Lesions are connected components at 6-connectivity (face neighbours). A
  component is kept when it has at least ``floor(min_volume / v) + 1`` voxels,
  with ``v`` the product of the three spacings read as float32 and multiplied
  in double precision. Removed components are background on both sides.
- Overlap table ``T[i, j]``: voxels in reference component i and predicted
  component j (index 0 = background, removed components included).
- A lesion i of the tested set is detected when
  (1) its covered fraction ``sum_j>0 T[i, j] / |i|`` is > ``alpha``, and
  (2) going through the components j of the other set in decreasing order of
  overlap with i, while the accumulated ``T[i, j] / sum_j>0 T[i, j]`` is
  < ``gamma``, none has ``T[0, j] / |j|`` > ``beta`` (its share outside the
  tested set's kept lesions). The component whose weight lifts the sum to
  ``gamma`` or above is itself tested first. Like Anima, at most
  ``n_tested + 1`` components are examined (its loop bound uses the number of
  labels, background included, of the tested set). Ties in overlap are taken
  larger component first (Anima's ``std::sort`` leaves their order unspecified).
- SensL: reference lesions tested against the prediction; PPVL: predicted
  lesions tested against the reference (0 when no predicted lesion is kept);
  F1 = 2 PPVL SensL / (PPVL + SensL), 0 when that sum is not above 0 (also
  when SensL is NaN because a non-empty reference has no lesion above the
  size limit).

Empty reference (no lesion voxel): Dice, F1, PPVL and SensL are undefined
(NaN), and ``fp_lesions`` / ``fp_volume_mm3`` report the kept predicted
lesions and their volume (the challenge's nFP and VFP); for a non-empty
reference these two are NaN.

With ``size_bins`` (what ``mslesseg evaluate`` passes) the row also holds
:data:`ADDED_COLUMNS` and the per-size columns of
:mod:`~mslesseg_nnunet.evaluation.detection` (bins of the kept lesions):
voxel-wise IoU, TPR, PPV, specificity and AVD (fraction and %) of the full
masks (:mod:`~mslesseg_nnunet.evaluation.voxel_metrics`), ASSD and HD95 in mm
and in voxels, and FDR = 1 - PPVL over the kept predicted lesions (NaN when
none is kept; 1 on an empty reference with kept predicted lesions). The
tuning objective leaves ``size_bins`` out: only :data:`COLUMNS`, fast.
"""
from __future__ import annotations

import math

import numpy as np

from mslesseg_nnunet.components import component_sizes, label_components
from mslesseg_nnunet.evaluation.boxes import crop_to_union
from mslesseg_nnunet.evaluation.detection import size_columns, size_scores
from mslesseg_nnunet.evaluation.surface import assd_hd95
from mslesseg_nnunet.evaluation.voxel_metrics import (NAN, apply_empty_dice, overlap_counts,
                                                      ratio, voxel_scores)

COLUMNS = ("dice", "f1", "ppvl", "sensl", "n_ref_lesions", "n_pred_lesions",
           "n_detected_ref", "n_tp_pred", "fp_lesions", "fp_volume_mm3")
VOXEL_KEYS = ("iou", "tpr", "ppv", "specificity", "avd", "avd_pct")
ADDED_COLUMNS = (*VOXEL_KEYS, "assd_mm", "hd95_mm", "assd_vox", "hd95_vox", "fdr")


def columns(size_bins: str | None = None) -> tuple[str, ...]:
    """The keys of :func:`score_case`'s row for ``size_bins``."""
    return COLUMNS if size_bins is None else (*COLUMNS, *ADDED_COLUMNS, *size_columns(size_bins))


def anima_voxel_volume(spacing) -> float:
    """Voxel volume as Anima computes it: float32 spacings multiplied in double."""
    sx, sy, sz = (float(np.float32(s)) for s in spacing)
    return sx * sy * sz


def min_lesion_voxels(spacing, min_volume_mm3: float = 3.0) -> int:
    """Smallest kept component size: floor(min_volume / voxel volume) + 1 voxels."""
    return int(math.floor(float(min_volume_mm3) / anima_voxel_volume(spacing))) + 1


def kept_components(mask: np.ndarray, min_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """6-connected components with at least ``min_voxels`` voxels.

    Returns a label image where kept components are 1..n (ordered by
    decreasing size, like ITK's RelabelComponentImageFilter) and removed
    voxels are 0, and the sizes of the kept components.
    """
    labels, n = label_components(mask, connectivity=6)
    sizes = component_sizes(labels, n)
    order = np.argsort(-sizes, kind="stable")
    order = order[sizes[order] >= min_voxels]
    lut = np.zeros(n + 1, dtype=np.int64)
    lut[order + 1] = np.arange(1, order.size + 1)
    return lut[labels], sizes[order]


def overlap_table(ref_labels: np.ndarray, n_ref: int, pred_labels: np.ndarray,
                  n_pred: int) -> np.ndarray:
    """``T[i, j]`` = voxels with reference label i and predicted label j."""
    flat = ref_labels.ravel() * (n_pred + 1) + pred_labels.ravel()
    return np.bincount(flat, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)


def _is_detected(row: np.ndarray, outside: np.ndarray, sizes_other: np.ndarray,
                 n_tested: int, alpha: float, beta: float, gamma: float) -> bool:
    """Anima's test for one lesion; ``row`` is its overlap with labels 0..n of the other set."""
    covered = int(row[1:].sum())
    if not covered / (covered + int(row[0])) > alpha:
        return False
    overlaps = row[1:]
    order = np.lexsort((-sizes_other, -overlaps))  # overlap desc, then size desc
    accumulated = 0.0
    for k, j in enumerate(order):
        if not (accumulated < gamma and k < n_tested + 1):
            break
        if outside[j] / sizes_other[j] > beta:
            return False
        accumulated += overlaps[j] / covered
    return True


def detected_flags(table: np.ndarray, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """Which lesions (rows 1.. of ``table``) the columns' lesions detect (boolean array)."""
    n_tested = table.shape[0] - 1
    sizes_other = table.sum(axis=0)[1:]
    outside = table[0, 1:]
    return np.array([_is_detected(table[i], outside, sizes_other, n_tested, alpha, beta, gamma)
                     for i in range(1, n_tested + 1)], dtype=bool)


def _dice_from_jaccard(pred: np.ndarray, ref: np.ndarray) -> float:
    inter = int(np.count_nonzero(pred & ref))
    union = int(np.count_nonzero(pred | ref))
    if union == 0:
        return NAN
    jaccard = inter / union
    return 2.0 * jaccard / (1.0 + jaccard)


def score_case(pred: np.ndarray, ref: np.ndarray, spacing, min_volume_mm3: float = 3.0,
               alpha: float = 0.1, beta: float = 0.7, gamma: float = 0.65,
               size_bins: str | None = None, empty_dice: str = "nan") -> dict:
    """MSSEG-2 metrics of one binary prediction against its reference.

    Parameters
    ----------
    pred, ref : ndarray
        Masks of the same shape (non-zero = lesion).
    spacing : sequence of 3 floats
        Voxel size in mm (the reference image's).
    min_volume_mm3, alpha, beta, gamma : float
        Anima's ``-v``, ``-x``, ``-y``, ``-z`` options.
    size_bins : {None, "msl", "cib"}
        With a size-bin set, also the added metrics (see the module docstring).
    empty_dice : {"nan", "one-zero"}
        Dice and IoU on an empty reference (see
        :func:`~mslesseg_nnunet.evaluation.voxel_metrics.apply_empty_dice`).

    Returns
    -------
    dict
        Keys :func:`columns`; undefined values are NaN.
    """
    n_total = np.asarray(pred).size
    pred, ref = crop_to_union(np.asarray(pred) != 0, np.asarray(ref) != 0)
    min_voxels = min_lesion_voxels(spacing, min_volume_mm3)
    ref_labels, ref_sizes = kept_components(ref, min_voxels)
    pred_labels, pred_sizes = kept_components(pred, min_voxels)
    n_ref, n_pred = ref_sizes.size, pred_sizes.size
    table = overlap_table(ref_labels, n_ref, pred_labels, n_pred)
    both = n_ref and n_pred
    ref_found = detected_flags(table, alpha, beta, gamma) if both else np.zeros(n_ref, bool)
    pred_true = detected_flags(table.T, alpha, beta, gamma) if both else np.zeros(n_pred, bool)
    detected, tp_pred = int(ref_found.sum()), int(pred_true.sum())
    row = {"n_ref_lesions": n_ref, "n_pred_lesions": n_pred,
           "n_detected_ref": detected, "n_tp_pred": tp_pred,
           "fp_lesions": NAN, "fp_volume_mm3": NAN}
    if not ref.any():
        row.update(dice=NAN, f1=NAN, ppvl=NAN, sensl=NAN, fp_lesions=n_pred,
                   fp_volume_mm3=int(pred_sizes.sum()) * anima_voxel_volume(spacing))
    else:
        ppvl = tp_pred / n_pred if n_pred else 0.0
        sensl = detected / n_ref if n_ref else NAN
        f1 = 2 * ppvl * sensl / (ppvl + sensl) if ppvl + sensl > 0 else 0.0
        row.update(dice=_dice_from_jaccard(pred, ref), f1=f1, ppvl=ppvl, sensl=sensl)
    tp, n_pred_vox, n_ref_vox = overlap_counts(pred, ref)
    if size_bins is not None:
        voxel = voxel_scores(tp, n_pred_vox, n_ref_vox, n_total)
        assd_mm, hd95_mm = assd_hd95(pred, ref, spacing)
        assd_vox, hd95_vox = assd_hd95(pred, ref, (1.0, 1.0, 1.0))
        row.update({key: voxel[key] for key in VOXEL_KEYS},
                   assd_mm=assd_mm, hd95_mm=hd95_mm, assd_vox=assd_vox, hd95_vox=hd95_vox,
                   fdr=ratio(n_pred - tp_pred, n_pred),
                   **size_scores(size_bins, ref_sizes, ref_found, pred_sizes, pred_true))
    row = {key: row[key] for key in columns(size_bins)}
    return apply_empty_dice(row, n_pred_vox, n_ref_vox, empty_dice)
