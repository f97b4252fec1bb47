"""MSSEG-2 scoring: every animaSegPerfAnalyzer rule on hand-built 3D cases, and the CLI."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from eval_helpers import write_mask
from mslesseg_nnunet.evaluation.msseg2_metrics import (COLUMNS, min_lesion_voxels,
                                                       score_case)
from mslesseg_nnunet.experiment.progress import read_mean_dice

ISO = (1.0, 1.0, 1.0)  # kept lesions: floor(3/1) + 1 = 4 voxels or more


def empty(shape=(44, 14, 14)):
    return np.zeros(shape, dtype=bool)


def line(mask, x0, x1, y=5, z=5):
    """Set voxels x0..x1 (inclusive) of row (y, z)."""
    mask[x0:x1 + 1, y, z] = True
    return mask


def outside_block(mask, x0, x1):
    """Add voxels next to row (5, 5) over x0..x1 (rows y=6..8): 3 voxels per x."""
    mask[x0:x1 + 1, 6:9, 5] = True
    return mask


def test_size_threshold_uses_float32_spacing_in_double():
    # 0.5 * 1.0 * 1.5 = 0.75 mm3: 3 / 0.75 = 4 exactly -> 4 voxels are not > 3 mm3.
    assert min_lesion_voxels((0.5, 1.0, 1.5)) == 5
    # float32(1.2) * 1.25 = 1.50000006 mm3 -> floor(1.99999992) + 1 = 2, whereas
    # exact decimal arithmetic would give floor(2.0) + 1 = 3.
    assert 3.0 / (1.2 * 1.25) == 2.0
    assert min_lesion_voxels((1.2, 1.25, 1.0)) == 2
    assert min_lesion_voxels((1.0, 1.0, 1.0), 0.0) == 1


def test_lesion_exactly_at_threshold_on_anisotropic_spacing_is_removed():
    spacing = (0.5, 1.0, 1.5)
    ref = line(empty(), 0, 4)            # 5 voxels = 3.75 mm3: kept
    ref = line(ref, 10, 13)              # 4 voxels = 3.0 mm3: removed (not > 3)
    pred = line(empty(), 10, 13)         # exactly on the removed reference lesion
    pred = line(pred, 20, 24)            # 5 voxels: kept, false positive
    row = score_case(pred, ref, spacing)
    assert row["n_ref_lesions"] == 1 and row["n_pred_lesions"] == 1
    assert row["n_detected_ref"] == 0 and row["n_tp_pred"] == 0
    assert row["sensl"] == 0 and row["ppvl"] == 0 and row["f1"] == 0
    jac = 4 / 14
    assert row["dice"] == 2 * jac / (1 + jac)            # full masks, no size filter
    assert row["dice"] == pytest.approx(2 * 4 / (9 + 9), rel=1e-12)


def test_split_reference_lesion_detected_by_two_predictions():
    ref = line(empty(), 0, 19)
    pred = line(line(empty(), 0, 8), 10, 19)             # two pieces, gap at x=9
    row = score_case(pred, ref, ISO)
    assert (row["n_ref_lesions"], row["n_pred_lesions"]) == (1, 2)
    assert (row["n_detected_ref"], row["n_tp_pred"]) == (1, 2)
    assert row["sensl"] == 1 and row["ppvl"] == 1 and row["f1"] == 1


def test_merged_prediction_covers_two_reference_lesions():
    ref = line(line(empty(), 0, 9), 11, 20)
    pred = line(empty(), 0, 20)                          # bridges the gap at x=10
    row = score_case(pred, ref, ISO)
    assert (row["n_ref_lesions"], row["n_pred_lesions"]) == (2, 1)
    assert (row["n_detected_ref"], row["n_tp_pred"]) == (2, 1)
    assert row["f1"] == 1


def test_beta_violation_and_strict_comparison():
    ref = line(empty(), 0, 2)
    ref[0:3, 5, 6] = True                                 # 6-voxel reference lesion
    # prediction: the lesion + 15 voxels outside -> outside share 15/21 = 0.714 > 0.7
    pred = ref.copy()
    pred = outside_block(pred, 0, 4)
    row = score_case(pred, ref, ISO)
    assert row["n_detected_ref"] == 0                      # the big prediction fails beta
    assert row["n_tp_pred"] == 1                           # but it does hit the reference
    assert row["sensl"] == 0 and row["ppvl"] == 1 and row["f1"] == 0
    # outside share exactly 0.7 (7 of 10) is not > beta: detected
    ref2 = line(empty(), 0, 3)                             # 4 voxels (kept)
    pred2 = line(empty(), 0, 2)                            # 3 voxels inside ref2
    pred2[0:7, 4, 5] = True                                # 7 outside -> 7/10 = 0.7
    row2 = score_case(pred2, ref2, ISO)
    assert np.count_nonzero(pred2 & ~ref2) / np.count_nonzero(pred2) == 0.7
    assert row2["n_detected_ref"] == 1


def test_gamma_stops_after_enough_overlap():
    # reference: row x 0..19 (20 voxels); prediction A inside it, B partly inside
    # and mostly outside (outside share 15/20 = 0.75 > beta).
    ref = line(empty(), 0, 19)
    a_short = line(empty(), 0, 9)                        # overlap 10
    b = outside_block(line(empty(), 11, 15), 11, 15)     # overlap 5, outside 15
    # covered = 15; A's weight 10/15 = 0.667 >= gamma: B never tested -> detected
    row = score_case(a_short | b, ref, ISO)
    assert row["n_detected_ref"] == 1
    # with A 9 voxels: weight 9/14 = 0.643 < gamma, so B (which lifts the sum over
    # gamma) is itself tested and fails beta -> not detected
    a_shorter = line(empty(), 0, 8)
    row = score_case(a_shorter | b, ref, ISO)
    assert row["n_detected_ref"] == 0
    assert row["n_tp_pred"] == 2


def test_at_most_n_tested_plus_one_components_examined():
    # Anima's loop bound: a single reference lesion examines at most 2 predicted
    # components, even if the accumulated fraction is still below gamma.
    ref = line(empty(), 0, 39)
    pred = line(empty(), 0, 10)                                    # overlap 11
    pred = line(pred, 12, 21)                                      # overlap 10
    pred = outside_block(line(pred, 23, 31), 23, 31)               # overlap 9, fails beta
    pred = outside_block(line(pred, 33, 38), 33, 38)               # overlap 6, fails beta
    row = score_case(pred, ref, ISO)
    assert row["n_pred_lesions"] == 4
    assert row["n_detected_ref"] == 1                    # 11/36 + 10/36 < 0.65, stop at k=2


def test_removed_small_reference_components_count_as_outside():
    ref = empty((12, 12, 12))
    ref[1:3, 1:3, 1:3] = True                             # 8-voxel lesion
    checker = (np.indices((4, 4, 2)).sum(axis=0) % 2).astype(bool)
    ref[3:7, 1:5, 1:3] |= checker                         # single voxels, 6-separated
    pred = empty((12, 12, 12))
    pred[1:3, 1:3, 1:3] = True
    pred[3:7, 1:5, 1:3] = True                            # 32 voxels over the checkerboard
    row = score_case(pred, ref, ISO)
    assert row["n_ref_lesions"] == 1 and row["n_pred_lesions"] == 1
    # outside share 32/40 = 0.8 > beta because the 16 small reference voxels are background
    assert row["n_detected_ref"] == 0
    jac = (8 + 16) / 40
    assert row["dice"] == pytest.approx(2 * jac / (1 + jac), abs=1e-15)


def test_empty_prediction():
    ref = line(line(empty(), 0, 9), 20, 29)
    row = score_case(empty(), ref, ISO)
    assert row["dice"] == 0 and row["f1"] == 0 and row["ppvl"] == 0 and row["sensl"] == 0
    assert (row["n_ref_lesions"], row["n_pred_lesions"]) == (2, 0)
    assert math.isnan(row["fp_lesions"]) and math.isnan(row["fp_volume_mm3"])


def test_empty_reference_reports_false_positive_lesions_and_volume():
    spacing = (0.5, 1.0, 1.5)                              # keep > 4 voxels
    pred = line(line(empty(), 0, 5), 10, 13)              # 6 voxels kept, 4 removed
    row = score_case(pred, empty(), spacing)
    assert row["fp_lesions"] == 1
    assert row["fp_volume_mm3"] == 6 * 0.75
    for key in ("dice", "f1", "ppvl", "sensl"):
        assert math.isnan(row[key])
    assert set(row) == set(COLUMNS)


def test_cli_msseg2_patient_folders(tmp_path, run_cli):
    gt, pred = tmp_path / "training", tmp_path / "submission"
    ref = line(line(empty(), 0, 9), 20, 29)
    write_mask(gt / "013" / "ground_truth.nii.gz", ref, dtype=np.float32)
    write_mask(gt / "013" / "ground_truth_expert1.nii.gz", ref)
    write_mask(gt / "013" / "flair_time01_on_middle_space.nii.gz", ref * 100.0,
               dtype=np.float32)
    write_mask(pred / "013" / "segmentation.nii.gz", line(empty(), 0, 9))
    write_mask(gt / "015" / "ground_truth.nii.gz", empty())
    write_mask(pred / "015" / "segmentation.nii.gz", line(empty(), 0, 4))
    run_cli("evaluate", pred, gt, "--protocol", "msseg2", "-o", tmp_path / "m.csv",
            "--summary", tmp_path / "s.json")
    with open(tmp_path / "m.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:11] == ["case", "dice", "f1", "ppvl", "sensl", "n_ref_lesions",
                            "n_pred_lesions", "n_detected_ref", "n_tp_pred", "fp_lesions",
                            "fp_volume_mm3"]             # the added columns come after
    r013, r015 = (dict(zip(rows[0], r)) for r in rows[1:])
    assert r013["case"] == "013" and float(r013["f1"]) == pytest.approx(2 / 3)
    assert r013["fp_lesions"] == "" and r013["fp_volume_mm3"] == ""
    assert r015["dice"] == "" and r015["f1"] == "" and r015["fp_lesions"] == "1"
    assert float(r015["fp_volume_mm3"]) == 5.0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["metrics"]["f1"]["count"] == 1
    assert summary["metrics"]["fp_lesions"]["mean"] == 1.0
    assert "mean_dice" not in summary
    # `mslesseg status` shows this mean Dice (case 015 has no lesion: NaN, left out)
    assert read_mean_dice(tmp_path / "s.json") == pytest.approx(2 / 3)


def test_cli_msseg2_rejects_connectivity(tmp_path, run_cli):
    write_mask(tmp_path / "gt" / "013" / "ground_truth.nii.gz", line(empty(), 0, 9))
    proc = run_cli("evaluate", tmp_path / "gt", tmp_path / "gt", "--protocol", "msseg2",
                   "-o", tmp_path / "m.csv", "--connectivity", "26", check=False)
    assert proc.returncode == 2 and "--connectivity" in proc.stderr
    assert not (tmp_path / "m.csv").exists()
