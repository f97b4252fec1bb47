"""Added evaluation metrics (hand-made cases, MedPy) and `mslesseg consensus` (SimpleITK STAPLE)."""
from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from medpy.metric.binary import assd as medpy_assd
from medpy.metric.binary import hd95 as medpy_hd95

from eval_helpers import affine_for, blobs, error_lines, write_mask
from mslesseg_nnunet.cli import main
from mslesseg_nnunet.evaluation import msseg2_metrics, mslesseg_metrics
from mslesseg_nnunet.staple import staple

PROTOCOLS = {"mslesseg": mslesseg_metrics.score_case, "msseg2": msseg2_metrics.score_case}
ISO = (1.0, 1.0, 1.0)


def boxes(shape, *slabs):
    """A mask that is the union of the given index boxes."""
    mask = np.zeros(shape, dtype=bool)
    for slab in slabs:
        mask[slab] = True
    return mask


# ---------------------------------------------------------------- voxel metrics by hand

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_iou_specificity_avd_by_hand(protocol):
    shape = (10, 10, 10)                                   # 1000 voxels
    ref = boxes(shape, np.s_[0:4, 0:5, 0:5])               # 100 voxels
    pred = boxes(shape, np.s_[2:5, 0:5, 0:5])              # 75 voxels, 50 shared
    row = PROTOCOLS[protocol](pred, ref, ISO, size_bins="msl")
    assert row["iou"] == pytest.approx(50 / 125)
    assert row["specificity"] == pytest.approx((1000 - 125) / 900)
    assert row["avd_pct"] == pytest.approx(25.0)
    if protocol == "msseg2":                               # added to MSSEG-2 only
        assert row["avd"] == pytest.approx(0.25)
        assert (row["tpr"], row["ppv"]) == (pytest.approx(0.5), pytest.approx(50 / 75))
    assert row["dice"] == pytest.approx(2 * row["iou"] / (1 + row["iou"]))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_empty_reference_dice_conventions(protocol):
    shape, score = (8, 8, 8), PROTOCOLS[protocol]
    empty, pred = np.zeros(shape, bool), boxes(shape, np.s_[1:4, 1:4, 1:4])
    both = score(empty, empty, ISO, size_bins="msl", empty_dice="one-zero")
    fp = score(pred, empty, ISO, size_bins="msl", empty_dice="one-zero")
    assert (both["dice"], both["iou"]) == (1.0, 1.0)
    assert (fp["dice"], fp["iou"]) == (0.0, 0.0)
    default = score(empty, empty, ISO, size_bins="msl")
    assert math.isnan(default["dice"]) and math.isnan(default["iou"])
    assert math.isnan(score(pred, empty, ISO)["dice"]) == (protocol == "msseg2")
    hit = score(pred, pred, ISO, empty_dice="one-zero")   # non-empty reference: untouched
    assert hit["dice"] == 1.0


# ---------------------------------------------------------------- lesion F1, FDR, size bins

def test_mslesseg_lesion_f1_and_fdr_by_hand():
    shape = (20, 20, 20)
    ref = boxes(shape, np.s_[2:5, 2:5, 2:5], np.s_[10:13, 2:5, 2:5], np.s_[2:5, 12:15, 12:15])
    pred = boxes(shape, np.s_[4, 4, 4], np.s_[12:16, 4:6, 4], np.s_[16:19, 15:18, 15:18])
    row = mslesseg_metrics.score_case(pred, ref, ISO, size_bins="msl")
    # 2 of 3 reference lesions hit, 1 of 3 predicted lesions false: P = R = 2/3
    assert row["fdr"] == pytest.approx(1 / 3) == row["lfpr"]
    assert row["lesion_f1"] == pytest.approx(2 / 3)
    nothing = mslesseg_metrics.score_case(np.zeros(shape, bool), ref, ISO, size_bins="msl")
    assert nothing["lesion_f1"] == 0 and math.isnan(nothing["fdr"])
    no_ref = mslesseg_metrics.score_case(pred, np.zeros(shape, bool), ISO, size_bins="msl")
    assert math.isnan(no_ref["lesion_f1"]) and no_ref["fdr"] == 1


def test_msseg2_fdr_is_one_minus_ppvl():
    shape = (44, 14, 14)
    ref = boxes(shape, np.s_[0:10, 5, 5], np.s_[20:30, 5, 5])
    pred = boxes(shape, np.s_[0:10, 5, 5], np.s_[35:40, 5, 5], np.s_[35:40, 9, 9])
    row = msseg2_metrics.score_case(pred, ref, ISO, size_bins="msl")
    assert (row["n_pred_lesions"], row["n_tp_pred"]) == (3, 1)
    assert row["fdr"] == pytest.approx(2 / 3) == 1 - row["ppvl"]
    assert set(row) == set(msseg2_metrics.columns("msl"))


def lines_of(shape, lengths):
    """One straight lesion per length, along axis 0, on separate rows."""
    mask = np.zeros(shape, bool)
    for k, n in enumerate(lengths):
        mask[:n, 2 * k, 0] = True
    return mask


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_detection_by_msl_size_bins_at_their_bounds(protocol):
    shape = (1000, 12, 1)
    ref = lines_of(shape, [99, 100, 999, 1000, 5])         # small, medium, medium, large, small
    pred = lines_of(shape, [99, 0, 999, 0, 0, 100])        # hits 99 and 999; a 100 FP row
    row = PROTOCOLS[protocol](pred, ref, ISO, size_bins="msl")
    assert (row["n_ref_lesions_small"], row["n_ref_lesions_medium"],
            row["n_ref_lesions_large"]) == (2, 2, 1)
    assert (row["ltpr_small"], row["ltpr_medium"], row["ltpr_large"]) == (0.5, 0.5, 0.0)
    assert (row["n_pred_lesions_small"], row["n_pred_lesions_medium"],
            row["n_pred_lesions_large"]) == (1, 2, 0)
    assert (row["fdr_small"], row["fdr_medium"]) == (0.0, 0.5) and math.isnan(row["fdr_large"])


def test_cib_split_at_50_voxels():
    shape = (60, 8, 1)
    ref = lines_of(shape, [49, 50, 51])
    pred = lines_of(shape, [0, 50, 0, 10])                 # hits the 50; a 10-voxel FP
    row = mslesseg_metrics.score_case(pred, ref, ISO, size_bins="cib")
    assert (row["n_ref_lesions_medium"], row["n_ref_lesions_large"]) == (1, 2)
    assert (row["ltpr_medium"], row["ltpr_large"]) == (0.0, 0.5)
    assert (row["fdr_medium"], row["fdr_large"]) == (1.0, 0.0)
    assert "ltpr_small" not in row


# ---------------------------------------------------------------- distances in voxels (MedPy)

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_distances_in_voxels_and_mm_match_medpy(protocol):
    rng = np.random.default_rng(3)
    shape, spacing = (30, 26, 18), (0.7, 1.3, 2.9)
    ref = blobs(shape, [(8, 8, 8), (20, 15, 10)], 3.2, rng)
    pred = blobs(shape, [(9, 8, 8), (22, 17, 9)], 2.7, rng)
    row = PROTOCOLS[protocol](pred, ref, spacing, size_bins="msl")
    assert abs(row["assd_vox"] - medpy_assd(pred, ref)) < 1e-6          # MedPy: spacing 1
    assert abs(row["hd95_vox"] - medpy_hd95(pred, ref)) < 1e-6
    assert abs(row["assd_mm"] - medpy_assd(pred, ref, spacing)) < 1e-6
    assert abs(row["hd95_mm"] - medpy_hd95(pred, ref, spacing)) < 1e-6


# ---------------------------------------------------------------- STAPLE

def test_staple_equals_simpleitk_and_the_obvious_hand_case():
    rng = np.random.default_rng(0)
    truth = blobs((20, 18, 16), [(6, 6, 6), (13, 11, 9)], 3.5)
    masks = [truth ^ (rng.random(truth.shape) > 0.97) for _ in range(4)]
    result = staple(masks)
    want = sitk.GetArrayFromImage(sitk.STAPLE([sitk.GetImageFromArray(m.astype(np.uint8))
                                               for m in masks], 1.0))
    np.testing.assert_allclose(result.probability, want, rtol=0, atol=1e-12)
    assert len(result.sensitivity) == len(result.specificity) == 4
    # four raters agree and a fifth adds one voxel: the consensus is the four's mask
    odd = truth.copy()
    odd[0, 0, 0] = True
    hand = staple([truth] * 4 + [odd])
    assert np.array_equal(hand.probability > 0.5, truth)
    # all inputs empty: STAPLE is undefined (NaN in SimpleITK); the consensus is empty
    none = staple([np.zeros((4, 4, 4), bool)] * 3)
    assert not none.probability.any() and none.sensitivity == (1.0, 1.0, 1.0)


# ---------------------------------------------------------------- consensus CLI

SPACING = (0.9, 1.1, 1.3)


@pytest.fixture
def team_folders(tmp_path):
    """A reference in MSLesSeg layout and three prediction folders (flat), two cases."""
    rng = np.random.default_rng(1)
    gt, teams = tmp_path / "test", [tmp_path / name for name in ("team_a", "team_b", "team_c")]
    masks = {}
    for case in ("P54", "P55"):
        truth = blobs((22, 20, 14), [rng.integers(5, 12, 3), rng.integers(8, 14, 3)], 3.0)
        write_mask(gt / case / f"{case}_MASK.nii.gz", truth, SPACING, dtype=np.float32)
        masks[case] = [truth]
        for team in teams:
            noisy = truth ^ (rng.random(truth.shape) > 0.96)
            write_mask(team / f"{case}.nii.gz", noisy, SPACING)
            masks[case].append(noisy)
    return gt, teams, masks


def test_cli_consensus_end_to_end(tmp_path, run_cli, team_folders):
    gt, teams, masks = team_folders
    out = tmp_path / "out" / "c1"
    proc = run_cli("consensus", *teams, "--gt", gt, "-o", out)
    assert "2 cases" in proc.stdout
    with open(out / "consensus_dice.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["input"] for r in rows[:4]] == ["reference", "team_a", "team_b", "team_c"]
    for case, inputs in masks.items():
        images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in inputs]
        want = sitk.GetArrayFromImage(sitk.STAPLE(images, 1.0)) > 0.5
        img = nib.load(str(out / f"{case}.nii.gz"))
        assert np.array_equal(np.asarray(img.dataobj) != 0, want)
        assert img.get_data_dtype() == np.uint8
        np.testing.assert_allclose(img.affine, affine_for(SPACING))  # the reference's header
        for r, m in zip((r for r in rows if r["case"] == case), inputs):
            dice = 2 * np.sum(m & want) / (m.sum() + want.sum())
            assert float(r["dice"]) == pytest.approx(dice, rel=1e-12)
    summary = json.loads((out / "consensus_summary.json").read_text())
    assert summary["threshold"] == 0.5 and summary["n_cases"] == 2
    team_a = [float(r["dice"]) for r in rows if r["input"] == "team_a"]
    assert summary["inputs"]["team_a"]["dice"]["mean"] == pytest.approx(np.mean(team_a))
    assert summary["inputs"]["reference"]["folder"] == str(gt)
    # the consensus folder is a reference folder for `mslesseg evaluate`
    run_cli("evaluate", teams[0], out, "--protocol", "mslesseg", "-o", tmp_path / "m.csv")


@pytest.mark.parametrize("problem", ["missing case", "geometry", "one input", "exists"])
def test_cli_consensus_bad_input(tmp_path, capsys, team_folders, problem):
    """In-process `mslesseg` (the CLI's main), to save a process start per case."""
    gt, teams, masks = team_folders
    out = tmp_path / "out"
    args = [*teams, "--gt", gt]
    if problem == "missing case":
        (teams[1] / "P55.nii.gz").unlink()
        message = "team_b: no mask for case(s) P55"
    elif problem == "geometry":
        write_mask(teams[2] / "P54.nii.gz", masks["P54"][3], (0.9, 1.1, 1.4))
        message = "P54.nii.gz: geometry mismatch"
    elif problem == "one input":
        args = [teams[0]]
        message = "at least two inputs"
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        message = "--overwrite"
    assert main(["consensus", *map(str, args), "-o", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert len(error_lines(stderr)) == 1 and message in stderr, stderr
    if problem == "exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_cli_evaluate_records_conventions(tmp_path, run_cli, team_folders):
    gt, teams, _ = team_folders
    summary = tmp_path / "s.json"
    run_cli("evaluate", teams[0], gt, "--protocol", "msseg2", "-o", tmp_path / "m.csv",
            "--summary", summary, "--size-bins", "cib", "--empty-dice", "one-zero")
    doc = json.loads(summary.read_text())
    assert doc["parameters"]["size_bins"] == "cib" and doc["parameters"]["empty_dice"] == "one-zero"
    assert doc["conventions"]["size_bins"]["thresholds_voxels"] == [50]
    assert doc["conventions"]["empty_dice"].startswith("one-zero")
    with open(tmp_path / "m.csv") as fh:
        header = next(csv.reader(fh))
    assert header == ["case", *msseg2_metrics.columns("cib")]
    assert {"iou", "fdr", "hd95_vox", "assd_vox", "avd_pct", "fdr_large"} <= set(header)
    assert {"q25", "q75"} <= set(doc["metrics"]["dice"])
