"""Voxel-wise overlap and volume metrics from the four counts of a pair of masks.

Both protocols share these definitions (P = prediction, R = reference, N = all
voxels of the image):

- Dice = 2|P∩R| / (|P| + |R|); IoU (Jaccard) = |P∩R| / |P∪R|;
- TPR (sensitivity) = |P∩R| / |R|; PPV (precision) = |P∩R| / |P|;
- specificity = |N - P - R| / |N - R| (true negatives over reference background);
- AVD = | |P| - |R| | / |R| as a fraction, ``avd_pct`` = 100 AVD (the data
  descriptor prints percent).

A ratio whose denominator is 0 is NaN. :func:`apply_empty_dice` switches Dice
and IoU to the convention of some MSSEG-2 teams for empty references.
"""
from __future__ import annotations

import numpy as np

NAN = float("nan")

# --empty-dice conventions: what Dice and IoU are when the reference is empty
EMPTY_DICE = {
    "nan": "undefined (NaN, left out of the summary) when the reference is empty",
    "one-zero": "1 when both masks are empty, 0 when the prediction has voxels "
                "on an empty reference",
}


def ratio(num: float, den: float) -> float:
    """num / den, NaN when den is 0."""
    return float(num) / float(den) if den else NAN


def overlap_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """(|P∩R|, |P|, |R|) of two boolean masks."""
    return (int(np.count_nonzero(pred & ref)), int(np.count_nonzero(pred)),
            int(np.count_nonzero(ref)))


def voxel_scores(tp: int, n_pred: int, n_ref: int, n_total: int) -> dict:
    """dice, iou, tpr, ppv, specificity, avd, avd_pct from the voxel counts.

    ``tp`` = |P∩R|, ``n_pred`` = |P|, ``n_ref`` = |R|, ``n_total`` = voxels
    in the whole image (for specificity).
    """
    union = n_pred + n_ref - tp
    avd = ratio(abs(n_pred - n_ref), n_ref)
    return {"dice": ratio(2 * tp, n_pred + n_ref), "iou": ratio(tp, union),
            "tpr": ratio(tp, n_ref), "ppv": ratio(tp, n_pred),
            "specificity": ratio(n_total - union, n_total - n_ref),
            "avd": avd, "avd_pct": 100.0 * avd}


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (NaN when both are empty)."""
    tp, n_pred, n_ref = overlap_counts(pred, ref)
    return ratio(2 * tp, n_pred + n_ref)


def apply_empty_dice(row: dict, n_pred: int, n_ref: int, convention: str) -> dict:
    """Set ``dice`` and ``iou`` (those present) of an empty-reference row by ``convention``.

    ``"nan"`` leaves the row as the protocol scored it; ``"one-zero"`` gives
    1 when both masks are empty and 0 when only the reference is.
    """
    if convention not in EMPTY_DICE:
        raise ValueError(f"unknown empty-dice convention {convention!r}")
    if convention == "one-zero" and n_ref == 0:
        value = 1.0 if n_pred == 0 else 0.0
        for key in ("dice", "iou"):
            if key in row:
                row[key] = value
    return row
