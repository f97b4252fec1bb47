"""``mslesseg convert mslesseg``: layout, labels, geometry, folds, errors, nnU-Net integrity."""
from __future__ import annotations

import filecmp
import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fake_trees import MNI_LAS, save, write_mslesseg_tree
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.folds import PAPER_TABLE, grouped_folds, paper_folds

NNUNET_BIN = Path(sys.executable).parent


def nnunet_dirs(tmp_path: Path) -> dict[str, Path]:
    return {v: tmp_path / "nnunet" / v for v in ("nnUNet_raw", "nnUNet_preprocessed")}


def assert_no_leftovers(tmp_path: Path) -> None:
    """No dataset folder, temporary folder or splits file left anywhere."""
    for root in nnunet_dirs(tmp_path).values():
        if root.is_dir():
            assert not [p for p in root.rglob("*") if "Dataset" in p.name or ".tmp" in p.name]


def assert_one_line_error(proc, *fragments: str) -> None:
    """Exit 2 and exactly one error line, the last one on stderr (progress bars may precede it)."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line for line in lines if "error:" in line] == lines[-1:], proc.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def patient_of(case: str) -> str:
    return case.split("_")[1]


def check_folds(folds: list[dict], cases: set[str]) -> None:
    """Folds partition the cases, never split a patient, and are balanced by scan count."""
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == cases and sum(map(len, vals)) == len(cases)
    for fold, val in zip(folds, vals):
        assert set(fold["train"]) == cases - val
        assert not {patient_of(c) for c in fold["train"]} & {patient_of(c) for c in val}
    per_patient = max(sum(patient_of(c) == p for c in cases) for p in map(patient_of, cases))
    assert max(map(len, vals)) - min(map(len, vals)) <= per_patient


@pytest.fixture
def fake_src(tmp_path) -> Path:
    return write_mslesseg_tree(tmp_path / "src")


def test_converts_fake_tree_with_exact_images_and_binary_labels(run_cli, fake_src, tmp_path):
    run_cli("convert", "mslesseg", fake_src, "--dataset-id", 101, "--modalities", "T2,FLAIR",
            "--workers", 2)
    ds = nnunet_dirs(tmp_path)["nnUNet_raw"] / "Dataset101_MSLesSeg"
    info = json.loads((ds / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "T2", "1": "FLAIR"}
    assert info["labels"] == {"background": 0, "lesion": 1} and info["lesion_labels"] == [1]
    assert info["numTraining"] == 10 and info["file_ending"] == ".nii.gz"
    assert "CC-BY-4.0" in info["description"]
    assert len(list((ds / "imagesTr").iterdir())) == 20
    assert sorted(p.name for p in (ds / "imagesTs").iterdir())[:2] == [
        "MSLesSeg_P54_0000.nii.gz", "MSLesSeg_P54_0001.nii.gz"]
    case_map = json.loads((ds / "case_map.json").read_text())
    assert case_map["MSLesSeg_P54"]["output"] == "P54/P54_MASK.nii.gz"
    assert case_map["MSLesSeg_P03_T2"]["output"] == "P3/T2/P3_T2_MASK.nii.gz"
    train_dir = fake_src / "train" / "P3" / "T2"
    # Channel order follows --modalities; images are the source bytes (so the same geometry).
    assert filecmp.cmp(ds / "imagesTr" / "MSLesSeg_P03_T2_0000.nii.gz",
                       train_dir / "P3_T2_T2.nii.gz", shallow=False)
    assert filecmp.cmp(ds / "imagesTr" / "MSLesSeg_P03_T2_0001.nii.gz",
                       train_dir / "P3_T2_FLAIR.nii.gz", shallow=False)
    for labels, src in [(ds / "labelsTr" / "MSLesSeg_P03_T2.nii.gz",
                         train_dir / "P3_T2_MASK.nii.gz"),
                        (ds / "labelsTs" / "MSLesSeg_P55.nii.gz",
                         fake_src / "test" / "P55" / "P55_MASK.nii.gz")]:
        out, ref = nib.load(labels), nib.load(src)
        assert out.get_data_dtype() == np.uint8
        data = np.asanyarray(out.dataobj)
        assert set(np.unique(data)) == {0, 1}
        np.testing.assert_array_equal(data, np.asanyarray(ref.dataobj))
        assert np.array_equal(out.affine, ref.affine)
        assert out.header["sform_code"] == ref.header["sform_code"] == 1
    splits = json.loads((nnunet_dirs(tmp_path)["nnUNet_preprocessed"] / "Dataset101_MSLesSeg"
                         / "splits_final.json").read_text())
    assert len(splits) == 5
    check_folds(splits, {p.name[:-7] for p in (ds / "labelsTr").iterdir()})


def test_grouped_folds_never_split_a_patient_and_balance_scans():
    rng = random.Random(3)
    for n_patients in (2, 5, 7, 53):
        cases = {f"MSLesSeg_P{p:02d}_T{t}": f"P{p}" for p in range(1, n_patients + 1)
                 for t in range(1, rng.randint(1, 4) + 1)}
        folds = grouped_folds(cases)
        assert len(folds) == min(5, n_patients)
        check_folds(folds, set(cases))
    with pytest.raises(UserError, match="at least 2 patients"):
        grouped_folds({"MSLesSeg_P01_T1": "P1", "MSLesSeg_P01_T2": "P1"})


def test_paper_folds_reproduce_the_table_as_printed():
    cases = {f"MSLesSeg_P{p:02d}_T{t}": f"P{p}" for p in range(1, 54) for t in (1, 2)}
    folds = paper_folds(cases, {f"P{p}": p for p in range(1, 54)})
    patients = [{k: {int(patient_of(c)[1:]) for c in f[k]} for k in f} for f in folds]
    assert patients[0] == {"train": set(range(1, 44)), "val": set(range(44, 54))}
    assert patients[1]["val"] == set(range(34, 44))
    assert patients[2]["train"] == set(range(1, 24)) | set(range(34, 54))
    # As printed: fold 4 trains on patient 23 which it also validates on ...
    assert patients[3]["train"] == set(range(1, 14)) | set(range(23, 54))
    assert patients[3]["val"] == set(range(14, 24)) and 23 in patients[3]["train"]
    # ... and patients 11-13 are never validated on.
    assert patients[4] == {"train": set(range(11, 54)), "val": set(range(1, 11))}
    assert not {11, 12, 13} & set().union(*(p["val"] for p in patients))
    assert len(PAPER_TABLE) == 5


def test_paper_folds_from_the_cli(run_cli, tmp_path):
    src = write_mslesseg_tree(tmp_path / "src", {n: 1 for n in range(1, 54)}, test_patients=(),
                              modalities=("FLAIR",), shape=(8, 8, 8))
    run_cli("convert", "mslesseg", src, "--dataset-id", 7, "--modalities", "FLAIR",
            "--folds", "paper", "--workers", 2)
    splits = json.loads((nnunet_dirs(tmp_path)["nnUNet_preprocessed"] / "Dataset007_MSLesSeg"
                         / "splits_final.json").read_text())
    assert splits[3]["val"] == [f"MSLesSeg_P{p}_T1" for p in range(14, 24)]


def test_paper_folds_need_the_table_patients(run_cli, fake_src, tmp_path):
    proc = run_cli("convert", "mslesseg", fake_src, "--dataset-id", 101, "--folds", "paper",
                   check=False)
    assert_one_line_error(proc, "--folds paper", "fold 1")
    assert_no_leftovers(tmp_path)


def corrupt(path: Path) -> None:
    path.write_bytes(gzip.compress(b"not a nifti file at all" * 20)[:40])


def break_geometry(path: Path, shape=None, shift=0.0) -> None:
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    affine = MNI_LAS.copy()
    affine[0, 3] += shift
    save(path, np.zeros(shape, np.float32) if shape else data, affine, 4)


@pytest.mark.parametrize("damage, fragments", [
    (lambda s: save(s / "train/P3/T2/P3_T2_MASK.nii.gz",
                    np.full((24, 28, 24), 0.5, np.float32), MNI_LAS, 1),
     ["P3_T2_MASK.nii.gz", "not binary"]),
    (lambda s: break_geometry(s / "train/P5/T1/P5_T1_T1.nii.gz", shape=(24, 28, 23)),
     ["P5_T1_T1.nii.gz", "differs"]),
    (lambda s: break_geometry(s / "test/P54/P54_T2.nii.gz", shift=2.0),
     ["P54_T2.nii.gz", "affine differs"]),
    (lambda s: (s / "train/P2/T1/P2_T1_T2.nii.gz").unlink(),
     ["P2_T1_T2.nii.gz", "missing T2 modality"]),
    (lambda s: corrupt(s / "train/P6/T1/P6_T1_FLAIR.nii.gz"),
     ["P6_T1_FLAIR.nii.gz", "not a readable NIfTI"]),
    (lambda s: (s / "test/P55/P55_MASK.nii.gz").unlink(),
     ["P55", "missing lesion mask"]),
])
def test_bad_input_is_one_line_error_and_leaves_nothing(run_cli, fake_src, tmp_path, damage,
                                                        fragments):
    damage(fake_src)
    proc = run_cli("convert", "mslesseg", fake_src, "--dataset-id", 101, "--workers", 2,
                   check=False)
    assert_one_line_error(proc, *fragments)
    assert_no_leftovers(tmp_path)


def test_dataset_id_rules(run_cli, fake_src, tmp_path):
    raw = nnunet_dirs(tmp_path)["nnUNet_raw"]
    run_cli("convert", "mslesseg", fake_src, "--dataset-id", 101, "--modalities", "FLAIR")
    before = (raw / "Dataset101_MSLesSeg" / "dataset.json").read_text()
    proc = run_cli("convert", "mslesseg", fake_src, "--dataset-id", 101, check=False)
    assert_one_line_error(proc, "Dataset101_MSLesSeg", "--overwrite")
    assert (raw / "Dataset101_MSLesSeg" / "dataset.json").read_text() == before
    proc = run_cli("convert", "mslesseg", fake_src, "--dataset-id", 101, "--name", "Other",
                   check=False)
    assert_one_line_error(proc, "--dataset-id 101", "Dataset101_MSLesSeg")
    assert not (raw / "Dataset101_Other").exists()
    run_cli("convert", "mslesseg", fake_src, "--dataset-id", 101, "--overwrite")
    info = json.loads((raw / "Dataset101_MSLesSeg" / "dataset.json").read_text())
    assert len(info["channel_names"]) == 3
    assert [p.name for p in raw.iterdir()] == ["Dataset101_MSLesSeg"]


def nnunet(tool: str, *args, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(NNUNET_BIN / tool), *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **{k: str(v) for k, v in env.items()},
                                          "nnUNet_results": str(env["nnUNet_raw"].parent / "r")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Error:" not in proc.stdout, proc.stdout[-3000:]
    return proc


@pytest.mark.slow
def test_fake_and_synthetic_trees_pass_nnunet_plan_and_preprocess(run_cli, tmp_path):
    fake = write_mslesseg_tree(tmp_path / "src", {1: 2, 2: 1, 3: 1}, test_patients=(54,))
    run_cli("convert", "mslesseg", fake, "--dataset-id", 11, "--workers", 2)
    run_cli("synth", "mslesseg", tmp_path / "synth", "--spacing", 3, "--patients", 3,
            "--timepoints", 1, "--test-patients", 1)
    run_cli("convert", "mslesseg", tmp_path / "synth", "--dataset-id", 13, "--name", "Synth")
    env = nnunet_dirs(tmp_path)
    # One nnU-Net call for both datasets: its start-up and worker pools dominate the time.
    nnunet("nnUNetv2_plan_and_preprocess", "-d", 11, 13, "--verify_dataset_integrity",
           "-c", "3d_fullres", "-np", 1, "-npfp", 1, env=env)
    for name, n_train in (("Dataset011_MSLesSeg", 4), ("Dataset013_Synth", 3)):
        pre = env["nnUNet_preprocessed"] / name
        assert (pre / "nnUNetPlans.json").is_file()
        assert len(list((pre / "nnUNetPlans_3d_fullres").glob("*.b2nd"))) == 2 * n_train


@pytest.mark.slow
def test_real_scans_convert_exactly_and_pass_nnunet_integrity(run_cli, real_data, tmp_path):
    run_cli("convert", "mslesseg", real_data, "--dataset-id", 12, "--modalities", "FLAIR,T1",
            "--workers", 2)
    env = nnunet_dirs(tmp_path)
    ds = env["nnUNet_raw"] / "Dataset012_MSLesSeg"
    for case, p in [("MSLesSeg_P18_T1", "P18"), ("MSLesSeg_P39_T1", "P39")]:
        folder = real_data / "train" / p / "T1"
        for c, mod in enumerate(("FLAIR", "T1")):
            assert filecmp.cmp(ds / "imagesTr" / f"{case}_{c:04d}.nii.gz",
                               folder / f"{p}_T1_{mod}.nii.gz", shallow=False)
        label, ref = nib.load(ds / "labelsTr" / f"{case}.nii.gz"), nib.load(
            folder / f"{p}_T1_MASK.nii.gz")
        assert label.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asanyarray(label.dataobj), np.asanyarray(ref.dataobj))
        assert label.header.get_sform().tobytes() == ref.header.get_sform().tobytes()
    assert np.asanyarray(nib.load(ds / "labelsTr" / "MSLesSeg_P18_T1.nii.gz").dataobj).sum() == 770
    splits = json.loads((env["nnUNet_preprocessed"] / "Dataset012_MSLesSeg"
                         / "splits_final.json").read_text())
    assert splits == [{"train": ["MSLesSeg_P18_T1"], "val": ["MSLesSeg_P39_T1"]},
                      {"train": ["MSLesSeg_P39_T1"], "val": ["MSLesSeg_P18_T1"]}] or \
        splits == [{"train": ["MSLesSeg_P39_T1"], "val": ["MSLesSeg_P18_T1"]},
                   {"train": ["MSLesSeg_P18_T1"], "val": ["MSLesSeg_P39_T1"]}]
    # Fingerprint extraction runs nnU-Net's full verify_dataset_integrity (the same check
    # plan_and_preprocess runs) without preprocessing two 1 mm volumes.
    nnunet("nnUNetv2_extract_fingerprint", "-d", 12, "--verify_dataset_integrity", "-np", 1,
           env=env)
