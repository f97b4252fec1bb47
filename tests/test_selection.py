"""Member selection (exhaustive and greedy) and the MSSEG-2 tuning objective, on hand-made cases."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from ensemble_helpers import class_probabilities, write_labels, write_validation_model
from mslesseg_nnunet.tuning.search import DICE
from mslesseg_nnunet.tuning.selection import select_members

SHAPE = (14, 14, 14)  # x, y, z; the affine's spacing is 1 x 1 x 2 mm (2 mm3 voxels)


def zyx(volume_xyz: np.ndarray) -> np.ndarray:
    return volume_xyz.transpose(2, 1, 0)


def test_greedy_stops_where_exhaustive_goes_on():
    """Hand-made subset scores: greedy takes the best single model {0} and stops, as no pair
    with 0 beats it; the exhaustive search finds the best pair {1, 2}."""
    scores = {(0,): 0.6, (1,): 0.5, (2,): 0.5, (0, 1): 0.55, (0, 2): 0.55, (1, 2): 0.9,
              (0, 1, 2): 0.7}
    evaluate = lambda subset: np.array([[[scores[subset]], [scores[subset]]]])  # 1 setting, 2 cases
    exhaustive = select_members(3, evaluate, DICE, exhaustive_up_to=3)
    assert (exhaustive.method, exhaustive.subset, exhaustive.score) == ("exhaustive", (1, 2), 0.9)
    assert len(exhaustive.tried) == 7
    greedy = select_members(3, evaluate, DICE, exhaustive_up_to=2)
    assert (greedy.method, greedy.subset, greedy.score) == ("greedy", (0,), 0.6)
    assert sorted(greedy.tried) == [(0,), (0, 1), (0, 2), (1,), (2,)]


def test_select_members_union_of_complementary_models(tmp_path, run_cli):
    """Case c1 has lesion X, c2 lesion Y. Model A finds X only, B finds Y only, C adds a false
    positive only: the union of A and B alone is exact (Dice 1); A and B alone score 0.5, C 0.
    Greedy: A (first of the tied singles), then A + B, and A + B + C is worse: 6 subsets."""
    root = tmp_path / "nnunet"
    x, y, fp = ((slice(2, 5),) * 3), ((slice(8, 11),) * 3), (slice(12, 14), slice(0, 2), slice(0, 2))
    gts = {c: np.zeros(SHAPE, np.uint8) for c in ("c1", "c2")}
    gts["c1"][x], gts["c2"][y] = 1, 1
    maps = {name: {c: np.full(SHAPE, 0.05, np.float32) for c in gts} for name in "ABC"}
    maps["A"]["c1"][x] = maps["B"]["c2"][y] = 0.9
    for c in gts:
        maps["C"][c][fp] = 0.9
    models = [write_validation_model(root / "nnUNet_results", "Dataset401_Sel", "binary",
                                     {0: {c: class_probabilities(zyx(maps[n][c]), "binary") for c in gts}},
                                     name=f"Trainer{n}__nnUNetPlans__3d_fullres") for n in "ABC"]
    write_labels(root / "nnUNet_raw" / "Dataset401_Sel" / "labelsTr", gts)
    results = {}
    for method, limit in (("exhaustive", "6"), ("greedy", "0")):
        out = tmp_path / f"{method}.json"
        run_cli("tune", "--models", *models, "--protocol", "mslesseg", "--rule", "union",
                "--select-members", "--exhaustive-up-to", limit, "-o", out,
                "--thresholds", "0.5", "0.8", "--min-sizes", "0")
        results[method] = json.loads(out.read_text())
        rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
        assert len(rows) == 2 * {"exhaustive": 7, "greedy": 6}[method]
    for tuned in results.values():
        assert [m["model"] for m in tuned["members"]] == [
            "Dataset401_Sel/TrainerA__nnUNetPlans__3d_fullres",
            "Dataset401_Sel/TrainerB__nnUNetPlans__3d_fullres"]
        assert tuned["score"] == 1.0 and tuned["params"]["rule"] == "union"
    assert results["greedy"]["selection"] == {"method": "greedy", "n_subsets": 6}
    # The ensemble of all three validation folders keeps only the chosen two.
    ens = tmp_path / "ens"
    run_cli("ensemble", "-i", *(m / "fold_0" / "validation" for m in models), "-o", ens,
            "--params", tmp_path / "exhaustive.json")
    assert len(json.loads((ens / "ensemble.json").read_text())["members"]) == 2
    for c, gt in gts.items():
        np.testing.assert_array_equal(np.asarray(nib.load(ens / f"{c}.nii.gz").dataobj), gt)


def test_msseg2_objective_sees_lesion_free_patients(tmp_path, run_cli):
    """P1 has lesions A (27 voxels, p 0.95) and C (8 voxels = 16 mm3, p 0.6); lesion-free P2 has
    a 4-voxel (8 mm3) false positive at p 0.9. Threshold 0.5 with minimum size 10 mm3 is exact
    on both; F1 cannot see P2 and keeps the first of its tied settings (no size filter)."""
    root = tmp_path / "nnunet"
    gt1, p1 = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.float32)
    gt1[2:5, 2:5, 2:5], p1[2:5, 2:5, 2:5] = 1, 0.95
    gt1[9:11, 9:11, 9:11], p1[9:11, 9:11, 9:11] = 1, 0.6
    gt2, p2 = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.float32)
    p2[5:7, 5:7, 5] = 0.9
    model = write_validation_model(root / "nnUNet_results", "Dataset402_New", "binary", {
        0: {"P1": class_probabilities(zyx(p1), "binary")},
        1: {"P2": class_probabilities(zyx(p2), "binary")}})
    write_labels(root / "nnUNet_raw" / "Dataset402_New" / "labelsTr", {"P1": gt1, "P2": gt2})
    grid = ["--thresholds", "0.5", "0.7", "--min-sizes", "0", "10"]
    ranked, f1 = tmp_path / "rank.json", tmp_path / "f1.json"
    run_cli("tune", "--models", model, "--protocol", "msseg2", "-o", ranked, *grid)
    run_cli("tune", "--models", model, "--protocol", "msseg2", "--objective", "f1", "-o", f1, *grid)
    tuned = json.loads(ranked.read_text())
    assert tuned["metric"] == "mean_rank" and tuned["score"] == 1.5
    assert (tuned["params"]["threshold"], tuned["params"]["min_size"]) == (0.5, 10.0)
    assert tuned["criteria"] == {"lesion_f1": 1.0, "dice": 1.0, "nfp": 0.0, "vfp": 0.0}
    rows = list(csv.DictReader(open(ranked.with_suffix(".csv"))))
    # Settings (0.5, 0), (0.5, 10), (0.7, 0), (0.7, 10): F1 and Dice rank 1.5, 1.5, 3.5, 3.5;
    # nFP and VFP (the false positive goes only with the size filter) 3.5, 1.5, 3.5, 1.5.
    assert [float(r["mean_rank"]) for r in rows] == [2.5, 1.5, 3.5, 2.5]
    assert [float(r["mean_nfp"]) for r in rows] == [1.0, 0.0, 1.0, 0.0]
    assert [float(r["mean_vfp"]) for r in rows] == [8.0, 0.0, 8.0, 0.0]
    assert float(rows[2]["mean_lesion_f1"]) == pytest.approx(2 / 3)
    assert float(rows[2]["mean_dice"]) == pytest.approx(2 * 27 / (27 + 35))
    assert rows[0]["nfp:P1"] == "" and rows[0]["nfp:P2"] == "1.000000"
    tuned_f1 = json.loads(f1.read_text())
    assert tuned_f1["metric"] == "lesion_f1" and tuned_f1["score"] == 1.0
    assert (tuned_f1["params"]["threshold"], tuned_f1["params"]["min_size"]) == (0.5, 0.0)
