"""`mslesseg segment` end to end with an untrained tiny nnU-Net model (random weights): native
scans in, native mask / probability / lesion table / QC page and cohort CSV out, resumable."""
from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from native_helpers import oblique_affine, write_native
from predict_helpers import make_models, plan_tiny_datasets
from test_native import HALF, P39
from tiny_nnunet import run_tool

pytestmark = pytest.mark.slow


def test_segment_bids_cohort_native_outputs_and_resume(tmp_path):
    tiny = plan_tiny_datasets(tmp_path / "nnunet")
    model = make_models(tiny, labellings=("binary",))["binary"]
    affine = oblique_affine(spacing=HALF["spacing"], shape=HALF["shape"])
    anat = tmp_path / "bids" / "sub-01" / "anat"
    write_native(P39 / "P39_T1_FLAIR.nii.gz", anat / "sub-01_FLAIR.nii.gz", affine, HALF["shape"], 3.7)
    write_native(P39 / "P39_T1_T1.nii.gz", anat / "sub-01_T1w.nii.gz", affine, HALF["shape"], 0.4)
    out = tmp_path / "out"
    args = ("segment", "--input", tmp_path / "bids", "--models", model, "--device",
            "cpu", "--disable-tta", "--skull-stripped", "-o", out)
    run_tool("mslesseg", *map(str, args), env=tiny.env)

    subject = out / "sub-01"
    mask, probability = (nib.load(subject / name) for name in
                         ("lesion_mask.nii.gz", "lesion_probability.nii.gz"))
    for img in (mask, probability):
        assert img.shape == HALF["shape"] and np.allclose(img.affine, affine, atol=1e-4)
    mask_data = np.asarray(mask.dataobj)
    prob = np.asarray(probability.dataobj)
    assert mask.get_data_dtype() == np.uint8 and set(np.unique(mask_data)) <= {0, 1}
    assert 0.0 <= prob.min() and prob.max() <= 1.0 + 1e-6
    with open(subject / "lesions.csv") as fh:
        lesions = list(csv.DictReader(fh))
    voxel_mm3 = abs(np.linalg.det(affine[:3, :3]))
    assert sum(int(r["voxels"]) for r in lesions) == int(mask_data.sum())
    assert sum(float(r["volume_mm3"]) for r in lesions) == pytest.approx(mask_data.sum() * voxel_mm3)
    page = (subject / "qc.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.split("<body>")[1]
    with open(out / "cohort.csv") as fh:
        cohort = list(csv.DictReader(fh))
    assert [r["subject"] for r in cohort] == ["sub-01"] and int(cohort[0]["lesions"]) == len(lesions)

    before = (subject / "lesion_mask.nii.gz").stat().st_mtime_ns
    result = run_tool("mslesseg", *map(str, args), env=tiny.env)
    assert (subject / "lesion_mask.nii.gz").stat().st_mtime_ns == before  # resumed, not redone
    assert result.returncode == 0
