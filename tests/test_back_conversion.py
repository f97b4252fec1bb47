"""``prepare_prediction_inputs`` (every input layout) and ``write_back`` (naming, headers)."""
from __future__ import annotations

import filecmp
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from fake_trees import write_msseg2_tree, write_mslesseg_tree
from mslesseg_nnunet.dataset_conversion import prepare_prediction_inputs, write_back
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import read_volume

GEOMETRY_FIELDS = ("dim", "qform_code", "sform_code", "quatern_b", "quatern_c",
                   "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y",
                   "srow_z", "xyzt_units")


def assert_same_header_geometry(path, reference) -> None:
    """Affine fields, codes and voxel sizes (pixdim 0-3) equal bit for bit."""
    out, ref = nib.load(path).header, nib.load(reference).header
    assert out["pixdim"][:4].tobytes() == ref["pixdim"][:4].tobytes()
    assert out.get_best_affine().tobytes() == ref.get_best_affine().tobytes()
    for field in GEOMETRY_FIELDS:
        assert out[field].tobytes() == ref[field].tobytes(), field


def nnunet_style_prediction(label_file, tmp_path):
    """What nnU-Net writes for a case (SimpleITK), read back as the predict command reads it."""
    pred = tmp_path / "pred.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(label_file)), str(pred))
    return read_volume(pred).data


def test_mslesseg_test_folder_round_trip(tmp_path):
    src = write_mslesseg_tree(tmp_path / "src", {1: 1}, test_patients=(54, 60)) / "test"
    cases = prepare_prediction_inputs(src, tmp_path / "in", ["T1", "FLAIR"])
    assert sorted(cases) == ["MSLesSeg_P54", "MSLesSeg_P60"]
    assert cases["MSLesSeg_P54"]["output"] == "P54/P54_MASK.nii.gz"
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        f"MSLesSeg_P{n}_{c:04d}.nii.gz" for n in (54, 60) for c in (0, 1)]
    assert filecmp.cmp(tmp_path / "in" / "MSLesSeg_P60_0000.nii.gz",
                       src / "P60" / "P60_T1.nii.gz", shallow=False)
    for case, entry in cases.items():
        source_mask = src / case[-3:] / f"{case[-3:]}_MASK.nii.gz"
        written = write_back(nnunet_style_prediction(source_mask, tmp_path), entry,
                             tmp_path / "out")
        assert written == tmp_path / "out" / entry["output"]
        assert_same_header_geometry(written, source_mask)
        assert nib.load(written).get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asanyarray(nib.load(written).dataobj),
                                      np.asanyarray(nib.load(source_mask).dataobj))


def test_real_scan_back_conversion_keeps_headers_bit_for_bit(real_data, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(real_data / "train" / "P18", folder / "P18")
    (folder / "P18" / "T1" / "P18_T1_MASK.nii.gz").unlink()  # a scan to predict has no mask
    cases = prepare_prediction_inputs(folder, tmp_path / "in", ["FLAIR", "T1"])
    entry = cases["MSLesSeg_P18_T1"]
    assert entry["output"] == "P18/T1/P18_T1_MASK.nii.gz"
    flair = folder / "P18" / "T1" / "P18_T1_FLAIR.nii.gz"
    assert entry["reference_image"] == str(flair.resolve())
    mask = np.asanyarray(nib.load(real_data / "train/P18/T1/P18_T1_MASK.nii.gz").dataobj)
    written = write_back(mask.astype(bool), entry, tmp_path / "out")
    assert_same_header_geometry(written, flair)  # qform/sform code 4, as the source image
    np.testing.assert_array_equal(np.asanyarray(nib.load(written).dataobj), mask)


def test_msseg2_patients_folder(tmp_path):
    src = write_msseg2_tree(tmp_path / "src") / "testing"
    cases = prepare_prediction_inputs(src, tmp_path / "in")
    assert sorted(cases) == ["MSSEG2_001", "MSSEG2_002"]
    entry = cases["MSSEG2_002"]
    assert entry["output"] == "002/segmentation.nii.gz"
    assert filecmp.cmp(tmp_path / "in" / "MSSEG2_002_0001.nii.gz",
                       src / "002" / "flair_time02_on_middle_space.nii.gz", shallow=False)
    shape = nib.load(entry["reference_image"]).shape
    written = write_back(np.ones(shape, np.uint8), entry, tmp_path / "out")
    assert_same_header_geometry(written, src / "002" / "flair_time01_on_middle_space.nii.gz")
    with pytest.raises(UserError, match="MSSEG-2 inputs have channels"):
        prepare_prediction_inputs(src, tmp_path / "in2", ["FLAIR"])


def test_nnunet_input_folder(tmp_path):
    src = write_mslesseg_tree(tmp_path / "src", {1: 1}, test_patients=(54,)) / "test" / "P54"
    folder = tmp_path / "imagesTs"
    folder.mkdir()
    for c, mod in enumerate(("FLAIR", "T1")):
        shutil.copy(src / f"P54_{mod}.nii.gz", folder / f"case7_{c:04d}.nii.gz")
    cases = prepare_prediction_inputs(folder, tmp_path / "in", ["FLAIR", "T1"])
    assert list(cases) == ["case7"] and cases["case7"]["output"] == "case7.nii.gz"
    with pytest.raises(UserError, match="channel 2 of case case7"):
        prepare_prediction_inputs(folder, tmp_path / "in3", ["FLAIR", "T1", "T2"])


def test_prediction_input_errors(tmp_path):
    src = write_mslesseg_tree(tmp_path / "src", {1: 1}, test_patients=(54,)) / "test"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(UserError, match="busy: folder for nnU-Net inputs is not empty"):
        prepare_prediction_inputs(src, tmp_path / "busy")
    with pytest.raises(UserError, match="no input layout recognised"):
        prepare_prediction_inputs(tmp_path / "busy", tmp_path / "in")
    (src / "P54" / "P54_T2.nii.gz").unlink()
    with pytest.raises(UserError, match="P54_T2.nii.gz: missing T2 modality"):
        prepare_prediction_inputs(src, tmp_path / "in")
    assert not (tmp_path / "in").exists()
    cases = prepare_prediction_inputs(src, tmp_path / "in", ["FLAIR"])
    with pytest.raises(UserError, match="mask shape"):
        write_back(np.zeros((2, 2, 2)), cases["MSLesSeg_P54"], tmp_path / "out")
    with pytest.raises(UserError, match="integers 0-255"):
        write_back(np.full((24, 28, 24), 0.5), cases["MSLesSeg_P54"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
