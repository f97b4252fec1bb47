"""Checks shared by the converter tests of ISBI 2015, MSSEG-2016, 3D-MR-MS and ``folders``."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesseg_nnunet.dataset_conversion import prepare_prediction_inputs, write_back
from mslesseg_nnunet.nifti import read_volume
from test_back_conversion import assert_same_header_geometry


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch) -> Path:
    """nnU-Net folders under ``tmp_path/"nnunet"`` for in-process conversions (as ``run_cli``)."""
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / "nnunet" / var))
    return tmp_path / "nnunet"


def raw_dataset(tmp_path: Path, folder: str) -> Path:
    return tmp_path / "nnunet" / "nnUNet_raw" / folder


def load_json(path: Path):
    return json.loads(Path(path).read_text())


def read(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


def set_values(path: Path, value: int) -> None:
    """Rewrite the mask at ``path`` (same grid) with one voxel set to ``value``."""
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj).copy()
    data[0, 0, 0] = value
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))


def assert_same_image(converted: Path, source: Path) -> None:
    """The converted ``.nii.gz`` holds the source's bytes (gzipped as is when it was ``.nii``)."""
    data = gzip.decompress(converted.read_bytes())
    expected = source.read_bytes()
    assert data == (gzip.decompress(expected) if source.name.endswith(".gz") else expected)


def assert_label(converted: Path, expected: np.ndarray, reference: Path) -> None:
    """uint8 label equal to ``expected`` carrying the reference mask's geometry."""
    out = nib.load(str(converted))
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), expected.astype(np.uint8))
    assert out.affine.tobytes() == nib.load(str(reference)).affine.tobytes()


def assert_patient_grouped(tmp_path: Path, folder: str) -> list[dict]:
    """splits_final.json: validation sets partition imagesTr's cases; no patient is split."""
    ds = raw_dataset(tmp_path, folder)
    splits = load_json(tmp_path / "nnunet" / "nnUNet_preprocessed" / folder / "splits_final.json")
    patient = {c: e["patient"] for c, e in load_json(ds / "case_map.json").items()}
    cases = {p.name[: -len(".nii.gz")] for p in (ds / "labelsTr").iterdir()}
    vals = [set(f["val"]) for f in splits]
    assert set().union(*vals) == cases and sum(map(len, vals)) == len(cases)
    for fold, val in zip(splits, vals):
        assert set(fold["train"]) == cases - val
        assert not {patient[c] for c in fold["train"]} & {patient[c] for c in val}
    return splits


def assert_round_trip(src: Path, tmp_path: Path, expected_outputs: dict[str, str],
                      modalities=None) -> dict:
    """Inputs of ``src`` -> nnU-Net names -> a mask per case written back: each lands at its
    source-naming path with the reference image's header and the mask's values."""
    cases = prepare_prediction_inputs(src, tmp_path / "inputs", modalities)
    assert {c: e["output"] for c, e in cases.items()} == expected_outputs
    for case, entry in cases.items():
        reference = Path(entry["reference_image"])
        data = read_volume(reference).data
        mask = data > data.mean()
        written = write_back(mask, entry, tmp_path / "back")
        assert written == tmp_path / "back" / entry["output"]
        assert_same_header_geometry(written, reference)
        np.testing.assert_array_equal(read(written), mask.astype(np.uint8))
        first = next(iter(entry["images"].values()))
        assert_same_image(tmp_path / "inputs" / f"{case}_0000.nii.gz", Path(first))
    return cases
