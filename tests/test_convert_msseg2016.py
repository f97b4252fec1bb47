"""``mslesseg convert msseg2016``: centres, rater options, --train-on, portal layout, errors."""
from __future__ import annotations

import numpy as np
import pytest

from convert_helpers import (assert_label, assert_patient_grouped, assert_round_trip,
                             assert_same_image, load_json, nnunet_env, raw_dataset, read,
                             set_values)
from fake_trees import save
from mslesseg_nnunet.dataset_conversion import convert_msseg2016
from public_trees import write_msseg2016_tree, write_portal_tree
from test_convert_mslesseg import assert_no_leftovers, assert_one_line_error

__all__ = ["nnunet_env"]
DS = "Dataset061_MSSEG2016"


@pytest.fixture
def src(tmp_path):
    return write_msseg2016_tree(tmp_path / "src")


def test_converts_consensus_with_centres_and_test_labels(run_cli, src, tmp_path):
    run_cli("convert", "msseg2016", src, "--dataset-id", 61, "--modalities", "FLAIR,T1",
            "--workers", 2)
    ds = raw_dataset(tmp_path, DS)
    info = load_json(ds / "dataset.json")
    assert info["channel_names"] == {"0": "FLAIR", "1": "T1"}
    assert info["numTraining"] == 4 and info["numTest"] == 2
    pdir = src / "Training" / "Center_07" / "Patient_01"
    assert_same_image(ds / "imagesTr" / "MSSEG2016_train_C07_P01_0001.nii.gz",
                      pdir / "Preprocessed_Data" / "T1_preprocessed.nii.gz")
    assert_label(ds / "labelsTr" / "MSSEG2016_train_C07_P01.nii.gz",
                 read(pdir / "Masks" / "Consensus.nii.gz"), pdir / "Masks" / "Consensus.nii.gz")
    assert sorted(p.name for p in (ds / "labelsTs").iterdir()) == [
        "MSSEG2016_test_C01_P01.nii.gz", "MSSEG2016_test_C03_P01.nii.gz"]
    case_map = load_json(ds / "case_map.json")
    entry = case_map["MSSEG2016_test_C03_P01"]
    assert entry["centre"] == "Center_03" and entry["set"] == "test"
    assert entry["output"] == "Testing/Center_03/Patient_01/segmentation.nii.gz"
    assert case_map["MSSEG2016_train_C08_P01"]["centre"] == "Center_08"
    assert len(assert_patient_grouped(tmp_path, DS)) == 4


@pytest.mark.parametrize("label", ["rater3", "majority"])
def test_rater_options_and_train_on_both_match_numpy(nnunet_env, src, tmp_path, label):
    convert_msseg2016(src, 61, modalities="FLAIR", label=label, train_on="both", workers=1)
    ds = raw_dataset(tmp_path, DS)
    assert not (ds / "imagesTs").exists() and len(list((ds / "labelsTr").iterdir())) == 6
    pdir = src / "Testing" / "Center_03" / "Patient_01" / "Masks"
    raters = [read(pdir / f"ManualSegmentation_{k}.nii.gz") for k in range(1, 8)]
    expected = raters[2] if label == "rater3" else np.sum(raters, axis=0) >= 4
    assert expected.any() and not np.array_equal(raters[2], np.sum(raters, axis=0) >= 4)
    assert_label(ds / "labelsTr" / "MSSEG2016_test_C03_P01.nii.gz", expected,
                 pdir / "Consensus.nii.gz")


def test_portal_layout_is_refused(run_cli, tmp_path):
    proc = run_cli("convert", "msseg2016", write_portal_tree(tmp_path / "src"), "--dataset-id",
                   61, check=False)
    assert_one_line_error(proc, "01016SACH", "challenge-portal layout",
                          "Training/Center_NN/Patient_NN/Preprocessed_Data/")
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("damage, fragments", [
    (lambda s: save(s / "Training/Center_01/Patient_02/Preprocessed_Data/T2_preprocessed.nii.gz",
                    np.zeros((8, 9, 6), np.float32), np.eye(4), 1),
     ["T2_preprocessed.nii.gz", "differs"]),
    (lambda s: set_values(s / "Testing/Center_01/Patient_01/Masks/Consensus.nii.gz", 2),
     ["Consensus.nii.gz", "not binary (found values 2)"]),
])
def test_bad_input_is_one_line_error(run_cli, src, tmp_path, damage, fragments):
    damage(src)
    proc = run_cli("convert", "msseg2016", src, "--dataset-id", 61, check=False)
    assert_one_line_error(proc, *fragments)
    assert_no_leftovers(tmp_path)


def test_round_trip_in_msseg2016_naming(src, tmp_path):
    assert_round_trip(src / "Testing", tmp_path,
                      {f"MSSEG2016_test_C{c}_P01":
                       f"Testing/Center_{c}/Patient_01/segmentation.nii.gz" for c in ("01", "03")},
                      ["FLAIR", "T1", "T2", "PD", "T1POST"])
