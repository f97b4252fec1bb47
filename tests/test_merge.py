"""``mslesseg merge``: hand-made nnU-Net raw datasets merged into one (links, channels, ids, folds)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesseg_nnunet.dataset_conversion import merge_datasets, write_back
from mslesseg_nnunet.errors import UserError

ENDING = ".nii.gz"


@pytest.fixture
def nnunet(tmp_path, monkeypatch) -> Path:
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    return tmp_path


def write_dataset(root: Path, dataset_id: int, name: str, channels: list[str],
                  cases: dict[str, str], test_cases=(), labels=None, case_map: bool = True) -> Path:
    """A raw dataset by hand: every channel file holds its own channel name's index as a value,
    so a merged file tells where it came from. ``cases``: {case id: patient}."""
    folder = root / "nnUNet_raw" / f"Dataset{dataset_id:03d}_{name}"
    entries = {}
    for sub, ids in (("Tr", list(cases)), ("Ts", list(test_cases))):
        for case in ids:
            for index, channel in enumerate(channels):
                value = 100 * dataset_id + ord(channel[0])
                path = folder / f"images{sub}" / f"{case}_{index:04d}{ENDING}"
                path.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(np.full((3, 3, 3), value, np.float32), np.eye(4)), path)
            label = folder / f"labels{sub}" / f"{case}{ENDING}"
            label.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.eye(3, dtype=np.uint8)[None].repeat(3, 0), np.eye(4)), label)
            entries[case] = {"patient": cases.get(case, case), "output": f"{case}/mask.nii.gz",
                             "reference_image": str(label)}
    info = {"name": name, "channel_names": {str(i): c for i, c in enumerate(channels)},
            "labels": labels or {"background": 0, "lesion": 1}, "numTraining": len(cases),
            "file_ending": ENDING, "lesion_labels": [1]}
    (folder / "dataset.json").write_text(json.dumps(info))
    if case_map:
        (folder / "case_map.json").write_text(json.dumps(entries))
    return folder


def channel_value(path: Path) -> float:
    return float(np.asarray(nib.load(path).dataobj).flat[0])


def test_merge_links_renames_matches_channels_and_keeps_patients_together(nnunet):
    a = write_dataset(nnunet, 101, "Alpha", ["FLAIR", "T1", "T2"],
                      {"P1_T1": "P1", "P1_T2": "P1", "P2_T1": "P2", "P3_T1": "P3"},
                      test_cases=["P9"])
    b = write_dataset(nnunet, 102, "Beta", ["t2", "flair"],  # other order, other case
                      {"P1_T1": "P1", "P1_T2": "P1", "P2_T1": "P2"}, case_map=False)
    out = merge_datasets([101, 102], 110, channels=["FLAIR", "T2"])
    assert out.name == "Dataset110_Alpha_Beta"
    info = json.loads((out / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "FLAIR", "1": "T2"}
    assert (info["numTraining"], info["numTest"]) == (7, 1)
    assert info["merged_from"] == [a.name, b.name]
    images = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert images == sorted(f"{prefix}_{case}_{i:04d}{ENDING}" for prefix, cases in
                            (("Alpha", ["P1_T1", "P1_T2", "P2_T1", "P3_T1"]),
                             ("Beta", ["P1_T1", "P1_T2", "P2_T1"])) for case in cases for i in (0, 1))
    # Channels by name: FLAIR is file 0 of Alpha and file 1 of Beta; T1 of Alpha is dropped.
    assert os.path.samefile(out / "imagesTr" / "Alpha_P1_T1_0001.nii.gz", a / "imagesTr" / "P1_T1_0002.nii.gz")
    assert os.path.samefile(out / "imagesTr" / "Beta_P2_T1_0000.nii.gz", b / "imagesTr" / "P2_T1_0001.nii.gz")
    assert channel_value(out / "imagesTr" / "Beta_P2_T1_0001.nii.gz") == 10200 + ord("t")
    assert os.path.samefile(out / "labelsTr" / "Beta_P1_T2.nii.gz", b / "labelsTr" / "P1_T2.nii.gz")
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["Alpha_P9_0000.nii.gz",
                                                                    "Alpha_P9_0001.nii.gz"]
    # case_map: Alpha's entries renamed (outputs under its name), Beta had none.
    case_map = json.loads((out / "case_map.json").read_text())
    assert case_map["Alpha_P1_T2"]["patient"] == "Alpha_P1"
    assert case_map["Alpha_P1_T2"]["output"] == "Alpha/P1_T2/mask.nii.gz"
    assert case_map["Alpha_P9"]["reference_image"] == str(a / "labelsTs" / "P9.nii.gz")
    assert "Beta_P1_T1" not in case_map
    written = write_back(np.ones((3, 3, 3), np.uint8), case_map["Alpha_P1_T2"], nnunet / "out")
    assert written == nnunet / "out" / "Alpha" / "P1_T2" / "mask.nii.gz"
    # Folds: every training case validated once; Alpha's P1 scans together; same-named
    # patients of the two datasets are different patients.
    splits = json.loads((nnunet / "nnUNet_preprocessed" / out.name / "splits_final.json").read_text())
    assert sorted(c for f in splits for c in f["val"]) == sorted(
        p.name[:-len("_0000.nii.gz")] for p in (out / "imagesTr").glob("*_0000.nii.gz"))
    for fold in splits:
        assert ("Alpha_P1_T1" in fold["val"]) == ("Alpha_P1_T2" in fold["val"])
        assert not set(fold["train"]) & set(fold["val"])
    assert len(splits) == 5  # 3 Alpha patients + 3 Beta "patients" (no case map: one per case)


def test_merge_default_channels_are_the_first_sources(nnunet):
    write_dataset(nnunet, 101, "Alpha", ["FLAIR"], {"P1": "P1", "P2": "P2"})
    write_dataset(nnunet, 102, "Beta", ["T1", "FLAIR"], {"P1": "P1"})
    out = merge_datasets([101, 102], 110, name="Both")
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "FLAIR"}
    assert sorted(p.name for p in (out / "imagesTr").iterdir())[-1] == "Beta_P1_0000.nii.gz"
    assert channel_value(out / "imagesTr" / "Beta_P1_0000.nii.gz") == 10200 + ord("F")


@pytest.mark.parametrize("problem, message", [
    ("channel", r"Dataset102_Beta/dataset.json: no channel 'T2' \(it has FLAIR, T1\)"),
    ("labels", r"Dataset102_Beta/dataset.json: labels .* differ"),
    ("same name", r"two datasets are named alike"),
    ("one source", r"need two or more different dataset ids"),
    ("twice", r"--channels: FLAIR, flair names a channel twice"),
    ("own id", r"--dataset-id 101: must differ from --sources"),
    ("missing", r"--source 103: no Dataset103_\* folder"),
])
def test_merge_refuses_bad_input_and_writes_nothing(nnunet, problem, message):
    write_dataset(nnunet, 101, "Alpha", ["FLAIR", "T2"], {"P1": "P1", "P2": "P2"})
    labels = {"background": 0, "small": 1, "large": 2} if problem == "labels" else None
    write_dataset(nnunet, 102, "Alpha" if problem == "same name" else "Beta", ["FLAIR", "T1"],
                  {"P1": "P1"}, labels=labels)
    sources = {"one source": [101], "missing": [101, 103]}.get(problem, [101, 102])
    channels = ["FLAIR", "flair"] if problem == "twice" else None
    with pytest.raises(UserError, match=message):
        merge_datasets(sources, 101 if problem == "own id" else 110, channels=channels)
    assert not list((nnunet / "nnUNet_raw").glob("Dataset110_*"))
    assert not (nnunet / "nnUNet_preprocessed").exists()


def test_merge_cli_one_line_error_and_no_overwrite(nnunet, run_cli):
    write_dataset(nnunet / "nnunet", 101, "Alpha", ["FLAIR", "T2"], {"P1": "P1", "P2": "P2"})
    write_dataset(nnunet / "nnunet", 102, "Beta", ["FLAIR"], {"P1": "P1"})
    bad = run_cli("merge", "--sources", "101", "102", "--dataset-id", "110", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "Dataset102_Beta/dataset.json: no channel 'T2'" in bad.stderr
    ok = run_cli("merge", "--sources", "101", "102", "--dataset-id", "110", "--channels", "flair")
    assert "Dataset110_Alpha_Beta" in ok.stdout
    again = run_cli("merge", "--sources", "101", "102", "--dataset-id", "110", "--channels", "FLAIR",
                    check=False)
    assert again.returncode == 2 and "already exists (use --overwrite" in again.stderr
