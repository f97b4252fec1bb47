"""The rules behind every number of an evaluation, written into its summary JSON."""
from __future__ import annotations

from mslesseg_nnunet.components import LESION_CONNECTIVITY
from mslesseg_nnunet.evaluation.detection import SIZE_BINS
from mslesseg_nnunet.evaluation.voxel_metrics import EMPTY_DICE

SURFACE = ("surface = mask voxels with a face neighbour outside the mask (or the image); "
           "ASSD = mean and HD95 = 95th percentile (linear interpolation) of the distances of "
           "both directions pooled; *_mm with the reference spacing, *_vox with spacing 1")


def lesion_rule(protocol: str, options: dict) -> str:
    """How lesions are found and matched under ``protocol``."""
    if protocol == "mslesseg":
        return (f"{options.get('connectivity', LESION_CONNECTIVITY)}-connected components; a reference lesion is "
                "detected, and a predicted lesion a true positive, when the other mask "
                "overlaps it by at least one voxel")
    return ("6-connected components larger than min_volume_mm3 (floor(v / voxel volume) + 1 "
            "voxels), matched by animaSegPerfAnalyzer's rule with alpha, beta, gamma")


def conventions(protocol: str, options: dict) -> dict:
    """Definitions and conventions of the columns scored with ``options``."""
    empty = options.get("empty_dice", "nan")
    doc = {
        "dice": "2|P&R| / (|P| + |R|)" if protocol == "mslesseg" else "2J / (1 + J), J = IoU (Anima)",
        "empty_dice": f"{empty}: {EMPTY_DICE[empty]}",
        "undefined": "a ratio over zero is NaN: empty CSV cell, null in JSON, left out of the "
                     "statistics",
        "lesions": lesion_rule(protocol, options),
        "surface_distances": SURFACE,
        "statistics": "per metric over the cases where it is defined: mean, std (ddof 1), "
                      "median, q25 and q75 (linear interpolation), count",
    }
    bins = options.get("size_bins")
    if bins is not None:
        thresholds, names = SIZE_BINS[bins]
        doc.update({
            "iou": "|P&R| / |P or R| (Jaccard)",
            "specificity": "true negatives / reference background voxels (whole image)",
            "avd": "|Vp - Vr| / Vr (fraction); avd_pct = 100 avd",
            "fdr": "FP / (FP + TP) over predicted lesions",
            "size_bins": {"name": bins, "thresholds_voxels": list(thresholds),
                          "classes": list(names),
                          "rule": "class = number of thresholds <= lesion voxels; ltpr_<class> "
                                  "bins reference lesions, fdr_<class> predicted lesions, each "
                                  "by its own size"},
        })
    if bins is not None and protocol == "mslesseg":
        doc["lesion_f1"] = ("2 P R / (P + R), P = 1 - FDR, R = LTPR; 0 with no predicted "
                            "lesion, NaN with no reference lesion")
    return doc
