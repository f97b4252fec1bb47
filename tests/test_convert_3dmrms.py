"""``mslesseg convert 3dmrms``: the real patient07 (MNI layout), the other namings, the
longitudinal part shaped like MSSEG-2, errors.

The real scan is patient07 of the 3D MR image database of Multiple Sclerosis patients with
white matter lesion segmentations (Laboratory of Imaging Technologies, University of
Ljubljana; Lesjak, Pernus, Likar and Spiclin, Neuroinformatics 2017,
doi 10.1007/s12021-017-9348-7; CC-BY), as in open_ms_data's cross_sectional/MNI/.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED
from convert_helpers import (assert_label, assert_patient_grouped, assert_round_trip,
                             assert_same_image, load_json, nnunet_env, raw_dataset, read)
from fake_trees import save
from mslesseg_nnunet.dataset_conversion import convert_3dmrms
from mslesseg_nnunet.dataset_conversion.mrms3d import find_patient_folder, mrms_folder_scans
from mslesseg_nnunet.errors import UserError
from public_trees import write_mrms_tree
from test_convert_mslesseg import assert_no_leftovers, assert_one_line_error

__all__ = ["nnunet_env"]
REAL = SHARED / "data" / "3dmrms-real" / "cross_sectional" / "MNI" / "patient07"
GOLD = "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz"
MNI = "_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz"


@pytest.fixture
def real_mni(tmp_path):
    """open_ms_data-like tree: cross_sectional/MNI/ with patient07, and patient08 = patient07."""
    if not REAL.is_dir():
        pytest.fail(f"real 3D-MR-MS case not found at {REAL}; set MSLESSEG_SHARED")
    mni = tmp_path / "open_ms_data" / "cross_sectional" / "MNI"
    mni.mkdir(parents=True)
    for name in ("patient07", "patient08"):
        (mni / name).symlink_to(REAL, target_is_directory=True)
    return mni


def test_real_case_converts_exactly(run_cli, real_mni, tmp_path):
    run_cli("convert", "3dmrms", tmp_path / "open_ms_data", "--dataset-id", 71,
            "--modalities", "FLAIR,T1POST", "--workers", 2)
    ds = raw_dataset(tmp_path, "Dataset071_MRMS3D")
    info = load_json(ds / "dataset.json")
    assert info["channel_names"] == {"0": "FLAIR", "1": "T1POST"}
    assert "Lesjak" in info["description"] and info["licence"] == "CC-BY"
    assert_same_image(ds / "imagesTr" / "MRMS3D_patient07_0001.nii.gz", REAL / f"T1POST{MNI}")
    gold = read(REAL / GOLD)
    assert gold.sum() == 1300
    assert_label(ds / "labelsTr" / "MRMS3D_patient07.nii.gz", gold, REAL / GOLD)
    entry = load_json(ds / "case_map.json")["MRMS3D_patient08"]
    assert entry["output"] == f"patient08/{GOLD}" and entry["naming"] == "MNI"
    assert len(assert_patient_grouped(tmp_path, "Dataset071_MRMS3D")) == 2


def test_real_case_round_trip_keeps_the_header(tmp_path):
    folder = tmp_path / "MNI"
    folder.mkdir()
    (folder / "patient07").symlink_to(REAL, target_is_directory=True)
    cases = assert_round_trip(folder, tmp_path, {"MRMS3D_patient07": f"patient07/{GOLD}"},
                              ["FLAIR"])
    assert cases["MRMS3D_patient07"]["reference_image"].endswith(f"FLAIR{MNI}")


def test_longitudinal_part_is_shaped_like_msseg2(run_cli, tmp_path):
    src = write_mrms_tree(tmp_path / "src", "longitudinal")
    run_cli("convert", "3dmrms", src, "--dataset-id", 72)
    ds = raw_dataset(tmp_path, "Dataset072_MRMS3DLong")
    assert load_json(ds / "dataset.json")["channel_names"] == {"0": "time01", "1": "time02"}
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == [
        "MRMS3DLong_patient01.nii.gz", "MRMS3DLong_patient02.nii.gz"]
    for c, study in enumerate(("study1", "study2")):
        assert_same_image(ds / "imagesTr" / f"MRMS3DLong_patient02_{c:04d}.nii.gz",
                          src / "patient02" / f"{study}_FLAIR.nii.gz")
    assert_label(ds / "labelsTr" / "MRMS3DLong_patient01.nii.gz",
                 read(src / "patient01" / "gt.nii.gz"), src / "patient01" / "gt.nii.gz")
    assert (ds / "imagesTs" / "MRMS3DLong_patient03_0001.nii.gz").is_file()
    assert load_json(ds / "case_map.json")["MRMS3DLong_patient03"]["output"] == \
        "patient03/gt.nii.gz"
    with pytest.raises(UserError, match="converted like MSSEG-2"):
        mrms_folder_scans(src, "FLAIR,T2")


def test_original_naming(nnunet_env, tmp_path):
    src = write_mrms_tree(tmp_path / "src", "original", unlabelled=())
    convert_3dmrms(src, 73, modalities="T1POST", workers=1)
    ds = raw_dataset(tmp_path, "Dataset073_MRMS3D")
    assert_same_image(ds / "imagesTr" / "MRMS3D_patient03_0000.nii.gz",
                      src / "patient03" / "patient03_T1WKS.nii.gz")
    assert load_json(ds / "case_map.json")["MRMS3D_patient01"]["output"] == \
        "patient01/patient01_consensus_gt.nii.gz"


def test_ambiguous_or_mixed_folders_are_refused(tmp_path):
    write_mrms_tree(tmp_path / "src", "coregistered")
    longitudinal = write_mrms_tree(tmp_path / "src", "longitudinal")
    with pytest.raises(UserError, match="several 3D-MR-MS folders .*coregistered"):
        find_patient_folder(tmp_path / "src")
    (longitudinal / "patient03").rename(tmp_path / "src" / "3D-MR-MS" / "coregistered" /
                                        "patient04")
    with pytest.raises(UserError, match="different namings .*patient04: longitudinal"):
        mrms_folder_scans(tmp_path / "src" / "3D-MR-MS" / "coregistered", None)


def test_affine_mismatch_is_one_line_error(run_cli, tmp_path):
    src = write_mrms_tree(tmp_path / "src", "coregistered")
    save(src / "patient02" / "T2W.nii.gz", read(src / "patient02" / "FLAIR.nii.gz"),
         np.diag([0.47, 0.47, 0.8, 1.0]), 1)
    proc = run_cli("convert", "3dmrms", src, "--dataset-id", 74, check=False)
    assert_one_line_error(proc, "patient02/T2W.nii.gz", "affine differs")
    assert_no_leftovers(tmp_path)
