"""Lesion-level numbers shared by both protocols: F1, FDR and detection by lesion size.

Each protocol decides which reference lesions are detected and which
predicted lesions are true positives (MSLesSeg: overlap of at least one
voxel; MSSEG-2: Anima's rules); these functions only count.

- FDR = FP / (FP + TP) over predicted lesions (seed 003's definition);
  NaN without predicted lesions.
- Lesion F1 = 2 P R / (P + R) with P = 1 - FDR and R the detected fraction of
  reference lesions; NaN without reference lesions, 0 when nothing is
  predicted or P + R = 0.
- Size bins: a lesion of v voxels falls in class k = number of thresholds
  <= v. ``msl``: the MSL bins of ``mslesseg relabel msl`` (small < 100 <=
  medium < 1000 <= large); ``cib``: seed 003's split (medium < 50 <= large).
  Reference lesions are binned by their own size for ``ltpr_<class>``
  (detected / reference lesions of the class), predicted lesions by theirs
  for ``fdr_<class>``.
"""
from __future__ import annotations

import math

import numpy as np

from mslesseg_nnunet.evaluation.voxel_metrics import NAN, ratio
from mslesseg_nnunet.labelling import DEFAULT_THRESHOLDS, size_class_names

SIZE_BINS = {"msl": (DEFAULT_THRESHOLDS, tuple(size_class_names(DEFAULT_THRESHOLDS))),
             "cib": ((50,), ("medium", "large"))}


def lesion_f1(precision: float, recall: float) -> float:
    """F1 of lesion precision and recall (see the module docstring for undefined cases)."""
    if math.isnan(recall):
        return NAN
    if math.isnan(precision) or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def size_columns(bins: str) -> tuple[str, ...]:
    """Per-class columns of a size-bin set, class by class."""
    return tuple(f"{stem}_{name}" for name in SIZE_BINS[bins][1]
                 for stem in ("n_ref_lesions", "ltpr", "n_pred_lesions", "fdr"))


def size_scores(bins: str, ref_sizes: np.ndarray, ref_detected: np.ndarray,
                pred_sizes: np.ndarray, pred_true: np.ndarray) -> dict:
    """Lesion counts, detection rate and FDR per size class.

    ``ref_sizes``/``pred_sizes`` are the voxel counts of the lesions,
    ``ref_detected``/``pred_true`` their boolean outcome under the protocol.
    """
    thresholds, names = SIZE_BINS[bins]
    ref_class = np.searchsorted(thresholds, ref_sizes, side="right")
    pred_class = np.searchsorted(thresholds, pred_sizes, side="right")
    row = {}
    for k, name in enumerate(names):
        ref_in, pred_in = ref_class == k, pred_class == k
        n_ref, n_pred = int(ref_in.sum()), int(pred_in.sum())
        row[f"n_ref_lesions_{name}"] = n_ref
        row[f"ltpr_{name}"] = ratio(np.count_nonzero(ref_detected[ref_in]), n_ref)
        row[f"n_pred_lesions_{name}"] = n_pred
        row[f"fdr_{name}"] = ratio(np.count_nonzero(~pred_true[pred_in]), n_pred)
    return row
