"""Union and STAPLE rules, cv-dice weights: hand-made members against numpy and SimpleITK."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ensemble_helpers import class_probabilities, write_labels, write_member, write_validation_model
from mslesseg_nnunet.ensembles.folder import ensemble_folders
from mslesseg_nnunet.ensembles.fusion import StapleVotes
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.postprocessing.params import load_params
from mslesseg_nnunet.staple import staple

SHAPE = (12, 10, 8)  # x, y, z


def zyx(volume_xyz: np.ndarray) -> np.ndarray:
    return volume_xyz.transpose(2, 1, 0)


def rater_probabilities(seed: int, n: int = 3, background: float = 0.6) -> list[np.ndarray]:
    """Lesion probabilities (x, y, z) of ``n`` raters disagreeing around one shared blob
    (``background``: the highest probability they give elsewhere)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE)
    blob = ((grid - np.array([6, 5, 4])[:, None, None, None]) ** 2).sum(0) <= 9
    maps = []
    for _ in range(n):
        p = np.where(blob, rng.uniform(0.3, 1.0, SHAPE), rng.uniform(0.0, background, SHAPE))
        maps.append(p.astype(np.float32))
    return maps


def sitk_staple(masks: list[np.ndarray]) -> np.ndarray:
    """SimpleITK's STAPLE filter called directly, foreground 1, its defaults otherwise."""
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]
    return sitk.GetArrayFromImage(sitk.STAPLEImageFilter().Execute(images))


def test_union_and_staple_rules(tmp_path, run_cli):
    maps = rater_probabilities(0)
    folders = [write_member(tmp_path / f"m{i}", {"c": class_probabilities(zyx(p), "binary")})
               for i, p in enumerate(maps)]
    run_cli("ensemble", "-i", *folders, "-o", tmp_path / "union", "--rule", "union")
    union = np.asarray(nib.load(tmp_path / "union" / "c.nii.gz").dataobj)
    np.testing.assert_array_equal(union, np.logical_or.reduce([p > 0.5 for p in maps]))
    params = tmp_path / "tuned.json"
    params.write_text(json.dumps({"params": {"rule": "staple", "threshold": 0.6}}))
    run_cli("ensemble", "-i", *folders, "-o", tmp_path / "staple", "--params", params)
    expected = sitk_staple([p > 0.5 for p in maps])
    fused = np.load(tmp_path / "staple" / "c.npz")["probability"]
    np.testing.assert_allclose(fused, expected, atol=1e-6)
    assert 0 < (expected > 0.6).sum() < (expected > 0).sum()  # the threshold matters here
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "staple" / "c.nii.gz").dataobj),
                                  fused > 0.6)
    proc = run_cli("ensemble", "-i", *folders, "-o", tmp_path / "w", "--rule", "union",
                   "--weights", "1", "2", "1", check=False)
    assert proc.returncode == 2 and "--weights: the union rule" in proc.stderr


def test_staple_of_a_cropped_case_equals_the_whole_volume():
    """STAPLE's prior is global: cropping changes it, unless the cut-away background is counted."""
    rng = np.random.default_rng(1)
    box = (slice(2, 10), slice(1, 9), slice(0, 6))
    masks = []
    for _ in range(3):
        mask = np.zeros(SHAPE, bool)
        mask[box] = rng.random((8, 8, 6)) < 0.4
        masks.append(mask)
    whole = sitk_staple(masks)
    cropped = StapleVotes(outside=masks[0].size - masks[0][box].size)
    for mask in masks:
        cropped.add(mask[box].astype(np.float32))
    np.testing.assert_allclose(cropped.value(), whole[box], atol=1e-6)
    assert np.abs(staple([m[box] for m in masks]).probability - whole[box]).max() > 1e-3
    agreeing = StapleVotes(outside=5)  # members that all agree: their common mask, not NaN
    for _ in range(2):
        agreeing.add(np.zeros((2, 2, 2), np.float32))
    assert agreeing.value().tolist() == np.zeros((2, 2, 2)).tolist()


def test_cv_dice_weights(tmp_path, run_cli):
    """Model A's CV masks are exact (Dice 1), model B's cover half of each lesion
    (Dice 2 * 4 / (8 + 4) = 2/3): the mean weighs A by 1 and B by 2/3."""
    root = tmp_path / "nnunet"
    gt = np.zeros(SHAPE, np.uint8)
    gt[2:4, 2:4, 2:4] = 1
    a = np.where(gt > 0, 0.9, 0.1).astype(np.float32)
    b = np.where(gt > 0, 0.3, 0.2).astype(np.float32)
    b[2:4, 2:4, 2] = 0.8
    models = [write_validation_model(root / "nnUNet_results", f"Dataset30{i}_W{i}", "binary",
                                     {0: {"c": class_probabilities(zyx(p), "binary")}})
              for i, p in enumerate((a, b))]
    for i in range(2):
        write_labels(root / "nnUNet_raw" / f"Dataset30{i}_W{i}" / "labelsTr", {"c": gt})
    out = tmp_path / "tuned.json"
    run_cli("tune", "--models", *models, "--protocol", "mslesseg", "--weights", "cv-dice",
            "-o", out, "--thresholds", "0.5", "--min-sizes", "0")
    tuned = json.loads(out.read_text())
    assert [m["cv_dice"] for m in tuned["members"]] == pytest.approx([1.0, 2 / 3])
    assert tuned["weights"] == "cv-dice"
    folders = [m / "fold_0" / "validation" for m in models]
    env = {"nnUNet_raw": str(root / "nnUNet_raw")}
    for name, args in (("direct", ["--weights", "cv-dice"]), ("tuned", ["--params", out])):
        run_cli("ensemble", "-i", *folders, "-o", tmp_path / name, *args, env=env)
        np.testing.assert_allclose(np.load(tmp_path / name / "c.npz")["probability"],
                                   (1.0 * a + 2 / 3 * b) / (5 / 3), atol=1e-6)
    with pytest.raises(UserError, match="already fixes"):
        ensemble_folders(folders, tmp_path / "x", load_params(out), [1.0, 1.0], params_path=out)


def test_tune_staple_scores_the_whole_volume_consensus(tmp_path, run_cli):
    """`tune --rule staple` crops its cases (no rater reaches 0.3 outside the blob's box);
    its Dice per threshold is still that of SimpleITK's STAPLE on the whole volume."""
    root = tmp_path / "nnunet"
    maps = rater_probabilities(2, background=0.25)
    gt = np.zeros(SHAPE, np.uint8)
    gt[4:9, 3:8, 2:7] = 1
    models = [write_validation_model(root / "nnUNet_results", "Dataset310_S", "binary",
                                     {0: {"c": class_probabilities(zyx(p), "binary")}},
                                     name=f"T{i}__nnUNetPlans__3d_fullres") for i, p in enumerate(maps)]
    write_labels(root / "nnUNet_raw" / "Dataset310_S" / "labelsTr", {"c": gt})
    out = tmp_path / "tuned.json"
    run_cli("tune", "--models", *models, "--protocol", "mslesseg", "--rule", "staple", "-o", out,
            "--thresholds", "0.3", "0.8", "--min-sizes", "0")  # cropping alone changes both
    consensus = sitk_staple([p > 0.5 for p in maps])
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    for row in rows:
        mask = consensus > float(row["threshold"])
        dice = 2 * (mask & (gt > 0)).sum() / (mask.sum() + gt.sum())
        assert float(row["mean_dice"]) == pytest.approx(dice, abs=1e-6)
    assert json.loads(out.read_text())["params"]["rule"] == "staple"
