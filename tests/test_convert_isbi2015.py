"""``mslesseg convert isbi2015``: .nii sources, rater-mask options, timepoints grouped, errors."""
from __future__ import annotations

import numpy as np
import pytest

from convert_helpers import (assert_label, assert_patient_grouped, assert_round_trip,
                             assert_same_image, load_json, nnunet_env, raw_dataset, read)
from mslesseg_nnunet.dataset_conversion import convert_isbi2015
from public_trees import write_isbi_tree
from test_convert_mslesseg import assert_no_leftovers, assert_one_line_error

__all__ = ["nnunet_env"]
DS = "Dataset041_ISBI2015"


@pytest.fixture
def src(tmp_path):
    return write_isbi_tree(tmp_path / "src")


def masks(src, patient, tp):
    return [read(src / "training" / patient / "masks" / f"{patient}_{tp}_mask{r}.nii")
            for r in (1, 2)]


def test_converts_with_union_of_raters_and_timepoints_in_one_fold(run_cli, src, tmp_path):
    run_cli("convert", "isbi2015", src, "--dataset-id", 41, "--workers", 2)
    ds = raw_dataset(tmp_path, DS)
    info = load_json(ds / "dataset.json")
    assert info["channel_names"] == {"0": "FLAIR", "1": "T1", "2": "PD", "3": "T2"}
    assert info["numTraining"] == 5 and info["numTest"] == 2
    pre = src / "training" / "training02" / "preprocessed"
    for c, m in enumerate(("flair", "mprage", "pd", "t2")):
        assert_same_image(ds / "imagesTr" / f"ISBI2015_training02_01_{c:04d}.nii.gz",
                          pre / f"training02_01_{m}_pp.nii")
    m1, m2 = masks(src, "training02", "01")
    assert (m1 != m2).any()
    assert_label(ds / "labelsTr" / "ISBI2015_training02_01.nii.gz", m1 | m2,
                 src / "training" / "training02" / "masks" / "training02_01_mask1.nii")
    assert sorted(p.name for p in (ds / "imagesTs").iterdir())[::4] == [
        "ISBI2015_test01_01_0000.nii.gz", "ISBI2015_test01_02_0000.nii.gz"]
    assert not (ds / "labelsTs").exists()
    case_map = load_json(ds / "case_map.json")
    assert case_map["ISBI2015_test01_02"]["output"] == "test01/masks/test01_02_mask.nii"
    assert case_map["ISBI2015_training01_02"]["patient"] == "training01"
    assert len(assert_patient_grouped(tmp_path, DS)) == 3  # 3 patients, 5 scans


@pytest.mark.parametrize("label", ["mask1", "mask2", "intersection"])
def test_label_options_match_numpy(nnunet_env, src, tmp_path, label):
    convert_isbi2015(src, 41, modalities="FLAIR", label=label, workers=1)
    m1, m2 = masks(src, "training01", "02")
    expected = {"mask1": m1, "mask2": m2, "intersection": m1 & m2}[label]
    assert expected.any() and not np.array_equal(expected, m1 | m2)
    assert_label(raw_dataset(tmp_path, DS) / "labelsTr" / "ISBI2015_training01_02.nii.gz",
                 expected, src / "training" / "training01" / "masks" / "training01_02_mask1.nii")


def test_compressed_copies_and_any_top_folder(nnunet_env, tmp_path):
    src = write_isbi_tree(tmp_path / "src", {4: 1, 5: 1}, {2: 1}, ending=".nii.gz")
    convert_isbi2015(tmp_path / "src", 41, workers=1)  # the folder above "ISBI 2015"
    ds = raw_dataset(tmp_path, DS)
    assert_same_image(ds / "imagesTr" / "ISBI2015_training05_01_0003.nii.gz",
                      src / "training/training05/preprocessed/training05_01_t2_pp.nii.gz")
    assert load_json(ds / "case_map.json")["ISBI2015_test02_01"]["output"] == \
        "test02/masks/test02_01_mask.nii.gz"


def test_missing_channel_is_one_line_error(run_cli, src, tmp_path):
    (src / "training" / "training03" / "preprocessed" / "training03_01_pd_pp.nii").unlink()
    proc = run_cli("convert", "isbi2015", src, "--dataset-id", 41, check=False)
    assert_one_line_error(proc, "training03_01_pd_pp.nii[.gz]", "missing PD modality")
    assert_no_leftovers(tmp_path)


def test_round_trip_in_isbi_naming(src, tmp_path):
    assert_round_trip(src / "testdata_website", tmp_path,
                      {"ISBI2015_test01_01": "test01/masks/test01_01_mask.nii",
                       "ISBI2015_test01_02": "test01/masks/test01_02_mask.nii"},
                      ["FLAIR", "T2"])
