"""``mslesseg convert folders``: a BIDS tree by patterns, patient grouping, unlabelled cases,
back-conversion through the dataset's case map, errors."""
from __future__ import annotations

import pytest

from convert_helpers import (assert_label, assert_patient_grouped, assert_round_trip,
                             assert_same_image, load_json, raw_dataset, read, set_values)
from mslesseg_nnunet.dataset_conversion.folders import Pattern, parse_channels
from mslesseg_nnunet.errors import UserError
from public_trees import write_bids_tree
from test_convert_mslesseg import assert_no_leftovers, assert_one_line_error

DS = "Dataset081_Bids"
FLAIR = "FLAIR={patient}/{case}/anat/{patient}_{case}_FLAIR.nii.gz"
T1 = "T1={patient}/{case}/anat/{patient}_{case}_T1w.nii.gz"  # the files are .nii
LABEL = "derivatives/lesions/{patient}/{case}/{patient}_{case}_label-lesion_mask.nii.gz"


def convert(run_cli, src, *extra, check=True):
    return run_cli("convert", "folders", src, "--dataset-id", 81, "--name", "Bids",
                   "--channel", FLAIR, "--channel", T1, "--label", LABEL, *extra, check=check)


@pytest.fixture
def src(tmp_path):
    return write_bids_tree(tmp_path / "src")


def test_bids_tree_with_sessions_grouped_by_subject(run_cli, src, tmp_path):
    convert(run_cli, src, "--workers", 2)
    ds = raw_dataset(tmp_path, DS)
    assert load_json(ds / "dataset.json")["channel_names"] == {"0": "FLAIR", "1": "T1"}
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == [
        f"Bids_{c}.nii.gz" for c in ("sub-01_ses-01", "sub-01_ses-02", "sub-02_ses-01",
                                     "sub-03_ses-01", "sub-03_ses-02")]
    anat = src / "sub-03" / "ses-02" / "anat"
    assert_same_image(ds / "imagesTr" / "Bids_sub-03_ses-02_0001.nii.gz",
                      anat / "sub-03_ses-02_T1w.nii")
    mask = src / "derivatives/lesions/sub-03/ses-02/sub-03_ses-02_label-lesion_mask.nii.gz"
    assert_label(ds / "labelsTr" / "Bids_sub-03_ses-02.nii.gz", read(mask), mask)
    assert sorted(p.name for p in (ds / "imagesTs").iterdir()) == [
        "Bids_sub-04_ses-01_0000.nii.gz", "Bids_sub-04_ses-01_0001.nii.gz"]
    case_map = load_json(ds / "case_map.json")
    assert case_map["Bids_sub-01_ses-02"]["patient"] == "sub-01"
    assert len(assert_patient_grouped(tmp_path, DS)) == 3  # 3 labelled subjects
    # Predicting the converted imagesTs writes back at the label pattern's path.
    assert_round_trip(ds / "imagesTs", tmp_path, {
        "Bids_sub-04_ses-01":
            "derivatives/lesions/sub-04/ses-01/sub-04_ses-01_label-lesion_mask.nii.gz"})


def test_patterns_without_patient_and_pattern_errors(src):
    pattern = Pattern("{case}/ses-01/anat/{case}_ses-01_FLAIR.nii", "--channel FLAIR")
    assert [v["case"] for v in pattern.matches(src)] == ["sub-01", "sub-02", "sub-03", "sub-04"]
    for bad in ("sub-01/anat/FLAIR.nii.gz", "{case}/anat/{case}_FLAIR.mgz", "/abs/{case}.nii",
                "{case}/{session}/{case}.nii"):
        with pytest.raises(UserError, match="--channel X: need a relative path with {case}"):
            Pattern(bad, "--channel X")
    with pytest.raises(UserError, match="distinct names"):
        parse_channels([FLAIR, FLAIR])


@pytest.mark.parametrize("damage, fragments", [
    (lambda s: set_values(
        s / "derivatives/lesions/sub-02/ses-01/sub-02_ses-01_label-lesion_mask.nii.gz", 3),
     ["sub-02_ses-01_label-lesion_mask.nii.gz", "not binary (found values 3)"]),
    (lambda s: (s / "sub-04/ses-01/anat/sub-04_ses-01_T1w.nii").unlink(),
     ["sub-04_ses-01_T1w.nii[.gz]", "missing T1 channel"]),
])
def test_bad_input_is_one_line_error(run_cli, src, tmp_path, damage, fragments):
    damage(src)
    assert_one_line_error(convert(run_cli, src, check=False), *fragments)
    assert_no_leftovers(tmp_path)

