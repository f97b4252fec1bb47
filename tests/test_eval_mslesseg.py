"""MSLesSeg metrics against numpy and MedPy, hand-built lesion cases, and the CLI."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from medpy.metric.binary import assd as medpy_assd
from medpy.metric.binary import hd95 as medpy_hd95

from eval_helpers import blobs, error_lines, write_mask
from mslesseg_nnunet.evaluation.mslesseg_metrics import COLUMNS, score_case
from mslesseg_nnunet.evaluation.pairing import find_flair_images, find_masks

SPACING = (0.7, 1.3, 2.9)


def random_pair(seed, shape=(30, 26, 18)):
    rng = np.random.default_rng(seed)
    centres = [rng.integers(3, s - 3, size=3) for s in [min(shape)] * 4]
    ref = blobs(shape, centres, 3.2, rng)
    pred = blobs(shape, [c + rng.integers(-1, 2, size=3) for c in centres[:3]], 2.7, rng)
    pred[0, :4, :4] = True                                 # touches the image border
    return pred, ref


@pytest.mark.parametrize("seed", range(4))
def test_voxel_metrics_match_numpy(seed):
    pred, ref = random_pair(seed)
    row = score_case(pred, ref, SPACING)
    tp = np.sum(pred & ref)
    assert row["dice"] == pytest.approx(2 * tp / (pred.sum() + ref.sum()), rel=1e-12)
    assert row["tpr"] == pytest.approx(tp / ref.sum(), rel=1e-12)
    assert row["ppv"] == pytest.approx(tp / pred.sum(), rel=1e-12)
    assert row["avd"] == pytest.approx(abs(pred.sum() - ref.sum()) / ref.sum(), rel=1e-12)
    vox = np.prod(SPACING)
    assert row["ref_volume_mm3"] == pytest.approx(ref.sum() * vox, rel=1e-12)
    assert row["pred_volume_mm3"] == pytest.approx(pred.sum() * vox, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_surface_distances_match_medpy_on_anisotropic_spacing(seed):
    pred, ref = random_pair(seed)
    row = score_case(pred, ref, SPACING)
    assert abs(row["assd_mm"] - medpy_assd(pred, ref, SPACING)) < 1e-6
    assert abs(row["hd95_mm"] - medpy_hd95(pred, ref, SPACING)) < 1e-6


def test_surface_distances_brute_force_small_case():
    ref = np.zeros((6, 5, 4), bool)
    ref[1:4, 1:3, 1:3] = True
    pred = np.zeros_like(ref)
    pred[2:6, 2:5, 0:2] = True
    spacing = (1.5, 0.5, 2.0)

    def surface(m):
        pts = []
        for idx in zip(*np.nonzero(m)):
            for axis in range(3):
                for step in (-1, 1):
                    n = list(idx)
                    n[axis] += step
                    if not (0 <= n[axis] < m.shape[axis]) or not m[tuple(n)]:
                        pts.append(idx)
        return np.unique(np.array(pts), axis=0) * np.array(spacing)

    sp, sr = surface(pred), surface(ref)
    d = np.sqrt(((sp[:, None, :] - sr[None, :, :]) ** 2).sum(-1))
    pooled = np.concatenate([d.min(axis=1), d.min(axis=0)])
    row = score_case(pred, ref, spacing)
    assert abs(row["assd_mm"] - pooled.mean()) < 1e-9
    assert abs(row["hd95_mm"] - np.percentile(pooled, 95)) < 1e-9


def three_lesions():
    ref = np.zeros((20, 20, 20), bool)
    ref[2:5, 2:5, 2:5] = True          # A
    ref[10:13, 2:5, 2:5] = True        # B
    ref[2:5, 12:15, 12:15] = True      # C
    return ref


def test_lesion_hit_rule_one_voxel_overlap():
    ref = three_lesions()
    pred = np.zeros_like(ref)
    pred[4, 4, 4] = True               # one voxel of A: A is detected
    pred[12:16, 4:6, 4] = True         # touches B at (12, 4, 4): detected, not a FP
    pred[16:19, 15:18, 15:18] = True   # far from every reference lesion: FP
    row = score_case(pred, ref, (1, 1, 1))
    assert row["n_ref_lesions"] == 3 and row["n_pred_lesions"] == 3
    assert row["ltpr"] == pytest.approx(2 / 3)
    assert row["lfpr"] == pytest.approx(1 / 3)


def test_lesions_follow_connectivity():
    ref = np.zeros((8, 8, 8), bool)
    ref[1, 1, 1] = ref[2, 2, 2] = True     # corner neighbours: 1 lesion at 26, 2 at 6/18
    pred = np.zeros_like(ref)
    pred[1, 1, 1] = True
    assert score_case(pred, ref, (1, 1, 1), connectivity=26)["ltpr"] == 1.0
    row6 = score_case(pred, ref, (1, 1, 1), connectivity=6)
    assert row6["n_ref_lesions"] == 2 and row6["ltpr"] == 0.5


def test_empty_prediction_convention():
    row = score_case(np.zeros((20, 20, 20), bool), three_lesions(), (1, 1, 1))
    assert row["dice"] == 0 and row["tpr"] == 0 and row["ltpr"] == 0 and row["avd"] == 1
    for key in ("ppv", "lfpr", "assd_mm", "hd95_mm"):
        assert math.isnan(row[key])
    assert row["n_pred_lesions"] == 0 and row["pred_volume_mm3"] == 0
    assert set(row) == set(COLUMNS)


def test_real_scan_against_shifted_copy(real_data):
    from mslesseg_nnunet.nifti import read_volume
    vol = read_volume(real_data / "train" / "P18" / "T1" / "P18_T1_MASK.nii.gz")
    ref = vol.data > 0
    pred = np.roll(ref, 2, axis=1)
    row = score_case(pred, ref, vol.spacing)
    assert row["n_ref_lesions"] == 3 and row["ref_volume_mm3"] == 770
    # MedPy on a crop with a one-voxel empty margin (same surfaces, much faster)
    box = tuple(slice(max(a.min() - 1, 0), a.max() + 2) for a in np.nonzero(pred | ref))
    assert abs(row["hd95_mm"] - medpy_hd95(pred[box], ref[box], vol.spacing)) < 1e-6
    assert abs(row["assd_mm"] - medpy_assd(pred[box], ref[box], vol.spacing)) < 1e-6


# ---------------------------------------------------------------- layouts and CLI

def test_find_masks_layouts(tmp_path):
    m = np.zeros((4, 4, 4), np.uint8)
    for rel in ("test/P54/P54_MASK.nii.gz", "test/P54/P54_FLAIR.nii.gz",
                "train/P1/T1/P1_T1_MASK.nii.gz", "train/P1/T1/P1_T1_T2.nii.gz"):
        write_mask(tmp_path / "msl" / rel, m)
    assert list(find_masks(tmp_path / "msl")) == ["P1_T1", "P54"]
    for rel in ("013/ground_truth.nii.gz", "013/ground_truth_expert1.nii.gz",
                "013/flair_time01_on_middle_space.nii.gz"):
        write_mask(tmp_path / "ms2" / rel, m)
    assert list(find_masks(tmp_path / "ms2")) == ["013"]
    write_mask(tmp_path / "flat" / "case_001.nii.gz", m)
    assert list(find_masks(tmp_path / "flat")) == ["case_001"]
    # ids written by `mslesseg convert` map back to the datasets' own ids
    for name in ("MSLesSeg_P01_T2", "MSLesSeg_P54", "MSSEG2_013"):
        write_mask(tmp_path / "nnunet" / f"{name}.nii.gz", m)
    assert list(find_masks(tmp_path / "nnunet")) == ["013", "P1_T2", "P54"]
    write_mask(tmp_path / "imagesTs" / "MSLesSeg_P54_0000.nii.gz", m)
    assert list(find_flair_images(tmp_path / "imagesTs")) == ["P54"]


@pytest.fixture
def folders(tmp_path):
    """GT in MSLesSeg test layout (float32 masks), PRED nnU-Net flat (uint8)."""
    gt, pred = tmp_path / "test", tmp_path / "pred"
    pairs = {}
    for i, case in enumerate(("P54", "P55")):
        p, r = random_pair(i)
        write_mask(gt / case / f"{case}_MASK.nii.gz", r, SPACING, dtype=np.float32)
        write_mask(gt / case / f"{case}_FLAIR.nii.gz", r * 300.0, SPACING, dtype=np.float32)
        write_mask(pred / f"{case}.nii.gz", p, SPACING)
        pairs[case] = (p, r)
    return gt, pred, pairs


def read_rows(path):
    with open(path) as fh:
        return list(csv.reader(fh))


def test_cli_mslesseg_end_to_end(tmp_path, run_cli, folders):
    gt, pred, pairs = folders
    out, summ = tmp_path / "out" / "metrics.csv", tmp_path / "out" / "summary.json"
    proc = run_cli("evaluate", pred, gt, "--protocol", "mslesseg", "--output", out,
                   "--summary", summ, "--workers", "2")
    assert "2 cases" in proc.stdout
    rows = read_rows(out)
    assert rows[0][:13] == ["case", "dice", "tpr", "ppv", "ltpr", "lfpr", "avd", "assd_mm",
                            "hd95_mm", "n_ref_lesions", "n_pred_lesions", "ref_volume_mm3",
                            "pred_volume_mm3"]           # the added columns come after
    assert [r[0] for r in rows[1:]] == ["P54", "P55"]
    dices = []
    for r in rows[1:]:
        p, ref = pairs[r[0]]
        want = score_case(p, ref, np.float32(SPACING), size_bins="msl")
        for key, cell in zip(rows[0][1:], r[1:]):
            got = float(cell) if cell else math.nan       # undefined: empty cell
            assert got == pytest.approx(want[key], rel=1e-9, abs=1e-12, nan_ok=True), key
        dices.append(want["dice"])
    summary = json.loads(summ.read_text())
    assert summary["mean_dice"] == pytest.approx(np.mean(dices), rel=1e-12)
    dice = summary["metrics"]["dice"]
    assert dice["count"] == 2 and dice["median"] == pytest.approx(np.median(dices))
    assert dice["std"] == pytest.approx(np.std(dices, ddof=1))
    # an existing output is never replaced without --overwrite
    again = run_cli("evaluate", pred, gt, "--protocol", "mslesseg", "-o", out, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    run_cli("evaluate", pred, gt, "--protocol", "mslesseg", "-o", out, "--overwrite")


def test_cli_missing_prediction(tmp_path, run_cli, folders):
    gt, pred, _ = folders
    (pred / "P55.nii.gz").unlink()
    out = tmp_path / "m.csv"
    proc = run_cli("evaluate", pred, gt, "--protocol", "mslesseg", "-o", out, check=False)
    assert proc.returncode == 2 and "P55" in proc.stderr and "--missing-as-empty" in proc.stderr
    assert len(error_lines(proc.stderr)) == 1 and not out.exists()
    run_cli("evaluate", pred, gt, "--protocol", "mslesseg", "-o", out, "--missing-as-empty")
    row = dict(zip(*read_rows(out)[::2]))
    assert row["case"] == "P55" and row["dice"] == "0.0" and row["assd_mm"] == ""


def test_cli_submission_layout(tmp_path, run_cli, folders):
    gt, _, pairs = folders
    sub = tmp_path / "submission"
    for case, (p, _) in pairs.items():
        write_mask(sub / case / f"{case}_MASK.nii.gz", p, SPACING)
    run_cli("evaluate", sub, gt, "--protocol", "mslesseg", "-o", tmp_path / "m.csv")
    assert len(read_rows(tmp_path / "m.csv")) == 3


@pytest.mark.parametrize("problem, message", [
    ("shape", "shape"), ("spacing", "spacing"), ("origin", "origin"),
    ("direction", "orientation"), ("values", "not a binary mask")])
def test_cli_rejects_bad_predictions(tmp_path, run_cli, folders, problem, message):
    gt, pred, pairs = folders
    p, _ = pairs["P54"]
    bad = pred / "P54.nii.gz"
    if problem == "shape":
        write_mask(bad, p[:-1], SPACING)
    elif problem == "spacing":
        write_mask(bad, p, (0.7, 1.3, 3.0))
    elif problem == "origin":
        write_mask(bad, p, SPACING, origin=(0, 0, 5.0))
    elif problem == "direction":
        from mslesseg_nnunet.nifti import make_header, write_volume
        aff = np.diag([*SPACING, 1.0])                     # not flipped: other orientation
        write_volume(bad, p.astype(np.uint8), make_header(aff, 1, 1))
    else:
        write_mask(bad, p.astype(np.uint8) * 2, SPACING)
    out = tmp_path / "m.csv"
    proc = run_cli("evaluate", pred, gt, "--protocol", "mslesseg", "-o", out, check=False)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [error_lines(proc.stderr)[0]]
    assert message in error_lines(proc.stderr)[0] and "P54.nii.gz" in proc.stderr
    assert not out.exists()
