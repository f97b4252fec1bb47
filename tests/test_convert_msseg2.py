"""``mslesseg convert msseg2``: channels, label sources, empty ground truths, test patients."""
from __future__ import annotations

import filecmp
import json

import nibabel as nib
import numpy as np
import pytest

from fake_trees import write_msseg2_tree


def read(path):
    return np.asanyarray(nib.load(path).dataobj)


@pytest.fixture
def src(tmp_path):
    return write_msseg2_tree(tmp_path / "src")


def dataset(tmp_path, name="Dataset031_MSSEG2"):
    return tmp_path / "nnunet" / "nnUNet_raw" / name


def test_converts_with_empty_ground_truth_patients_intact(run_cli, src, tmp_path):
    run_cli("convert", "msseg2", src, "--dataset-id", 31, "--workers", 2)
    ds = dataset(tmp_path)
    info = json.loads((ds / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "time01", "1": "time02"}
    assert info["numTraining"] == 4 and info["lesion_labels"] == [1]
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == [
        f"MSSEG2_{i}.nii.gz" for i in ("013", "015", "016", "018")]
    empty = read(ds / "labelsTr" / "MSSEG2_015.nii.gz")
    assert empty.dtype == np.uint8 and not empty.any()
    for pid in ("013", "015"):
        patient = src / "training" / pid
        for c in (1, 2):
            assert filecmp.cmp(ds / "imagesTr" / f"MSSEG2_{pid}_{c - 1:04d}.nii.gz",
                               patient / f"flair_time0{c}_on_middle_space.nii.gz", shallow=False)
        label = nib.load(ds / "labelsTr" / f"MSSEG2_{pid}.nii.gz")
        reference = nib.load(patient / "ground_truth.nii.gz")
        np.testing.assert_array_equal(np.asanyarray(label.dataobj), read(reference.get_filename()))
        assert label.affine.tobytes() == reference.affine.tobytes()
    assert sorted(p.name for p in (ds / "imagesTs").iterdir()) == [
        f"MSSEG2_{i}_{c:04d}.nii.gz" for i in ("001", "002") for c in (0, 1)]
    assert not (ds / "labelsTs").exists()
    case_map = json.loads((ds / "case_map.json").read_text())
    assert case_map["MSSEG2_001"]["output"] == "001/segmentation.nii.gz"
    splits = json.loads((tmp_path / "nnunet" / "nnUNet_preprocessed" / "Dataset031_MSSEG2"
                         / "splits_final.json").read_text())
    assert len(splits) == 4 and sorted(c for f in splits for c in f["val"]) == [
        f"MSSEG2_{i}" for i in ("013", "015", "016", "018")]


@pytest.mark.parametrize("label", ["expert2", "majority"])
def test_label_sources(run_cli, src, tmp_path, label):
    run_cli("convert", "msseg2", src, "--dataset-id", 31, "--label", label, "--workers", 1)
    patient = src / "training" / "016"
    experts = [read(patient / f"ground_truth_expert{k}.nii.gz") for k in range(1, 5)]
    expected = experts[1] if label == "expert2" else (np.sum(experts, axis=0) >= 3)
    got = read(dataset(tmp_path) / "labelsTr" / "MSSEG2_016.nii.gz")
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    assert not np.array_equal(experts[0], experts[1])  # the sources really differ


def test_patients_without_ground_truth_go_to_imagesTs(run_cli, src, tmp_path):
    for f in (src / "training" / "018").glob("ground_truth*"):
        f.unlink()
    run_cli("convert", "msseg2", src, "--dataset-id", 31)
    ds = dataset(tmp_path)
    assert (ds / "imagesTs" / "MSSEG2_018_0001.nii.gz").is_file()
    assert not (ds / "labelsTr" / "MSSEG2_018.nii.gz").exists()
    assert json.loads((ds / "dataset.json").read_text())["numTraining"] == 3


def test_missing_chosen_label_is_an_error(run_cli, src, tmp_path):
    (src / "training" / "016" / "ground_truth_expert3.nii.gz").unlink()
    proc = run_cli("convert", "msseg2", src, "--dataset-id", 31, "--label", "majority",
                   check=False)
    assert proc.returncode == 2
    assert "016/ground_truth_expert3.nii.gz: missing ground truth for --label majority" in \
        proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "nnunet" / "nnUNet_raw").exists() or \
        not list((tmp_path / "nnunet" / "nnUNet_raw").iterdir())


def test_converts_a_tree_from_mslesseg_synth(run_cli, tmp_path):
    run_cli("synth", "msseg2", tmp_path / "synth", "--patients", 4, "--test-patients", 1,
            "--spacing", 3)
    run_cli("convert", "msseg2", tmp_path / "synth", "--dataset-id", 31)
    ds = dataset(tmp_path)
    patients = sorted(p.name for p in (tmp_path / "synth" / "training").iterdir())
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == [
        f"MSSEG2_{p}.nii.gz" for p in patients]
    for p in patients:
        label = read(ds / "labelsTr" / f"MSSEG2_{p}.nii.gz")
        assert label.dtype == np.uint8
        np.testing.assert_array_equal(label, read(tmp_path / "synth" / "training" / p
                                                  / "ground_truth.nii.gz"))
    assert len(list((ds / "imagesTs").iterdir())) == 2
