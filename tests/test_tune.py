"""`mslesseg tune`: the grid search finds known optima on constructed CV predictions."""
from __future__ import annotations

import csv
import json

import numpy as np

from ensemble_helpers import class_probabilities, write_labels, write_validation_model

SHAPE = (16, 16, 16)  # x, y, z (the affine's spacing is 1 x 1 x 2 mm)


def zyx(volume_xyz: np.ndarray) -> np.ndarray:
    return volume_xyz.transpose(2, 1, 0)


def binary_case(offset: int):
    """GT: a 27-voxel cube. Prediction: cube at 0.6, a halo at 0.4, a 2-voxel FP at 0.9."""
    gt, p = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.float32)
    s = slice(4 + offset, 7 + offset)
    p[3 + offset:8 + offset, 3 + offset:8 + offset, 3 + offset:8 + offset] = 0.4
    p[s, s, s] = 0.6
    gt[s, s, s] = 1
    p[13, 13, 12:14] = 0.9
    return gt, p


def madseg_case():
    """GT: small lesion A (8 voxels) and large lesion B (27). See test docstring for the rule."""
    gt = np.zeros(SHAPE, np.uint8)
    msl, dbl = np.zeros(SHAPE, np.float32), np.zeros(SHAPE, np.float32)
    a, b = (slice(1, 3),) * 3, (slice(8, 11),) * 3
    gt[a], gt[b] = 1, 2
    msl[a], dbl[a] = 0.7, 0.55
    msl[b], dbl[b] = 0.3, 0.9
    msl[13, 13, 1:3] = 0.65          # C: a small MSL-only false positive
    return gt, msl, dbl


def test_tune_mean_rule_finds_threshold_and_min_size(tmp_path, run_cli):
    results = tmp_path / "nnunet" / "nnUNet_results"
    cases = {"c1": binary_case(0), "c2": binary_case(2)}
    model = write_validation_model(results, "Dataset101_Bin", "binary", {
        0: {"c1": class_probabilities(zyx(cases["c1"][1]), "binary")},
        1: {"c2": class_probabilities(zyx(cases["c2"][1]), "binary")}})
    write_labels(tmp_path / "nnunet" / "nnUNet_raw" / "Dataset101_Bin" / "labelsTr",
                 {c: v[0] for c, v in cases.items()})
    out = tmp_path / "tuned.json"
    proc = run_cli("tune", "--models", model, "--protocol", "mslesseg", "-o", out,
                   "--thresholds", "0.3", "0.5", "0.7", "--min-sizes", "0", "4")
    tuned = json.loads(out.read_text())
    assert tuned["params"]["rule"] == "mean"
    assert (tuned["params"]["threshold"], tuned["params"]["min_size"]) == (0.5, 4.0)
    assert tuned["score"] == 1.0 and tuned["n_cases"] == 2, proc.stdout
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert len(rows) == 6
    row = next(r for r in rows if r["threshold"] == "0.5" and r["min_size"] == "0.0")
    assert abs(float(row["mean_dice"]) - 54 / 56) < 1e-6   # cube plus the 2-voxel FP


def test_tune_madseg_finds_mix_and_probability(tmp_path, run_cli):
    """Mix 1 keeps the MSL false positive C; mix 0 drops A (DBL max 0.55 < 0.6);
    prob 0.8 drops A; only mix 0.5 with prob 0.6 gives A + B exactly (B, a large DBL
    lesion, is kept whole at any mix)."""
    root = tmp_path / "nnunet"
    gt, msl, dbl = madseg_case()
    msl_model = write_validation_model(root / "nnUNet_results", "Dataset102_MSL", "msl",
                                       {0: {"P1": class_probabilities(zyx(msl), "msl")}})
    dbl_model = write_validation_model(root / "nnUNet_results", "Dataset103_DBL", "dbl",
                                       {0: {"P1": class_probabilities(zyx(dbl), "dbl")}})
    write_labels(root / "nnUNet_preprocessed" / "Dataset102_MSL" / "gt_segmentations", {"P1": gt})
    out = tmp_path / "tuned.json"
    run_cli("tune", "--models", msl_model, dbl_model, "--protocol", "mslesseg", "-o", out,
            "--mixes", "1.0", "0.5", "0.0", "--prob-thresholds", "0.6", "0.8",
            "--volume-thresholds", "10")
    tuned = json.loads(out.read_text())
    params = tuned["params"]
    assert (params["rule"], params["mix"], params["prob_threshold"]) == ("madseg", 0.5, 0.6)
    assert tuned["score"] == 1.0
    scores = {(float(r["mix"]), float(r["prob_threshold"])): float(r["mean_dice"])
              for r in csv.DictReader(open(out.with_suffix(".csv")))}
    assert abs(scores[(1.0, 0.6)] - 2 * 35 / (37 + 35)) < 1e-6
    assert abs(scores[(0.5, 0.8)] - 2 * 27 / (27 + 35)) < 1e-6
    # The tuned parameters drive `mslesseg ensemble` on the same validation folders.
    ens = tmp_path / "ens"
    run_cli("ensemble", "-i", msl_model / "fold_0" / "validation",
            dbl_model / "fold_0" / "validation", "-o", ens, "--params", out)
    import nibabel as nib
    np.testing.assert_array_equal(np.asarray(nib.load(ens / "P1.nii.gz").dataobj), gt > 0)


def test_tune_msseg2_lesion_f1_in_mm3(tmp_path, run_cli):
    root = tmp_path / "nnunet"
    gt, p = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.float32)
    for start in (2, 9):
        gt[start:start + 3, 2:5, 2:5] = 1
        p[start:start + 3, 2:5, 2:5] = 0.6
    for x in (2, 6, 10):                 # three 4-voxel (8 mm3) false positives
        p[x:x + 2, 12:14, 12] = 0.9
    model = write_validation_model(root / "nnUNet_results", "Dataset201_MSSEG2", "binary",
                                   {0: {"013": class_probabilities(zyx(p), "binary")}})
    write_labels(root / "nnUNet_raw" / "Dataset201_MSSEG2" / "labelsTr", {"013": gt})
    out = tmp_path / "tuned.json"
    run_cli("tune", "--models", model, "--protocol", "msseg2", "--objective", "f1", "-o", out,
            "--thresholds", "0.5", "0.7", "--min-sizes", "0", "10")
    tuned = json.loads(out.read_text())
    assert tuned["metric"] == "lesion_f1" and tuned["score"] == 1.0
    assert tuned["params"]["size_unit"] == "mm3" and tuned["params"]["connectivity"] == 6
    assert (tuned["params"]["threshold"], tuned["params"]["min_size"]) == (0.5, 10.0)


def test_tune_errors(tmp_path, run_cli):
    root = tmp_path / "nnunet"
    gt, p = binary_case(0)
    model = write_validation_model(root / "nnUNet_results", "Dataset101_Bin", "binary",
                                   {0: {"c1": class_probabilities(zyx(p), "binary")}})
    out = tmp_path / "tuned.json"
    proc = run_cli("tune", "--models", model, "--protocol", "mslesseg", "-o", out, check=False)
    assert proc.returncode == 2 and "no ground truth" in proc.stderr.strip().splitlines()[-1]
    proc = run_cli("tune", "--models", model, "--folds", "0", "3", "--protocol", "mslesseg",
                   "-o", out, check=False)
    assert proc.returncode == 2 and "fold_3" in proc.stderr
    assert not out.exists() and not out.with_suffix(".csv").exists()
