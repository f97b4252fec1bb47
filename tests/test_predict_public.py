"""``mslesseg predict`` on the new layouts: an ISBI 2015 test folder (``.nii`` inputs) and a
``folders``-converted dataset's imagesTs, both written back in the source naming, with a
FLAIR+T1 model (shared channel names: ISBI's MPRAGE is ``T1``)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from predict_helpers import make_models, plan_tiny_datasets
from public_trees import write_bids_tree, write_isbi_tree
from test_back_conversion import assert_same_header_geometry
from tiny_nnunet import run_tool

pytestmark = pytest.mark.slow


def test_predict_writes_isbi_and_pattern_namings(tmp_path):
    tiny = plan_tiny_datasets(tmp_path / "nnunet")
    model = make_models(tiny, ("binary",))["binary"]
    isbi = write_isbi_tree(tmp_path / "isbi", {1: 1}, {1: 2}) / "testdata_website"
    bids = write_bids_tree(tmp_path / "bids", {"sub-01": 1, "sub-02": 1, "sub-04": 1})
    run_tool("mslesseg", "convert", "folders", str(bids), "--dataset-id", 81, "--name", "Bids",
             "--channel", "FLAIR={case}/ses-01/anat/{case}_ses-01_FLAIR.nii.gz",
             "--channel", "T1={case}/ses-01/anat/{case}_ses-01_T1w.nii",
             "--label", "derivatives/lesions/{case}/ses-01/{case}_ses-01_label-lesion_mask.nii.gz",
             env=tiny.env)
    images_ts = tmp_path / "nnunet" / "nnUNet_raw" / "Dataset081_Bids" / "imagesTs"
    for src, expected in [
            (isbi, {"test01/masks/test01_01_mask.nii":
                    isbi / "test01/preprocessed/test01_01_flair_pp.nii",
                    "test01/masks/test01_02_mask.nii":
                    isbi / "test01/preprocessed/test01_02_flair_pp.nii"}),
            (images_ts, {"derivatives/lesions/sub-04/ses-01/sub-04_ses-01_label-lesion_mask.nii.gz":
                         bids / "sub-04/ses-01/anat/sub-04_ses-01_FLAIR.nii.gz"})]:
        out = tmp_path / f"out_{src.name}"
        run_tool("mslesseg", "predict", "-i", str(src), "-o", str(out), "--models", str(model),
                 "--device", "cpu", "--workers", "0", "--disable-tta", env=tiny.env)
        written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii*"))
        assert written == sorted(expected)
        for name, reference in expected.items():
            assert_same_header_geometry(out / name, reference)
            mask = nib.load(out / name)
            assert mask.get_data_dtype() == np.uint8
            assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
