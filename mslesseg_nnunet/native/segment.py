"""``mslesseg segment``: native scans -> native lesion mask, probability map, lesion table and
QC page, for one patient or every subject of a folder or BIDS dataset.

Per subject ``OUT/<subject>/``: ``preprocessed/`` (``mslesseg preprocess``),
``lesion_mask.nii.gz`` and ``lesion_probability.nii.gz`` on the native FLAIR
grid, ``lesions.csv`` (``mslesseg lesions``' table, volumes in native mm3) and
``qc.html``; ``OUT/cohort.csv`` has one row per subject. Subjects whose folder
is complete are skipped when rerun (each subject folder appears atomically).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.evaluation.lesion_report import LESION_COLUMNS, lesion_table, scan_summary
from mslesseg_nnunet.atomic import write_json
from mslesseg_nnunet.evaluation.summary import write_csv
from mslesseg_nnunet.native.preprocess import preprocess
from mslesseg_nnunet.native.qc import write_qc_page
from mslesseg_nnunet.native.to_native import native_volume
from mslesseg_nnunet.nifti import read_volume, write_volume

COHORT = "cohort.csv"
COHORT_COLUMNS = ("subject", "lesions", "total_volume_mm3", "flair_to_mni_mutual_information")
#: BIDS suffixes of the channels.
BIDS_SUFFIXES = {"FLAIR": "FLAIR", "T1": "T1w", "T2": "T2w"}
PREPROCESSED = "preprocessed"
MASK, PROBABILITY, LESIONS, QC, SUMMARY = ("lesion_mask.nii.gz", "lesion_probability.nii.gz",
                                           "lesions.csv", "qc.html", "summary.json")


def bids_subjects(root: Path) -> dict[str, dict[str, Path]]:
    """``sub-*/[ses-*/]anat/*_FLAIR.nii.gz`` with their ``_T1w``/``_T2w`` siblings, by
    subject (and session) label."""
    found = {}
    for flair in sorted(root.glob("sub-*/anat/*_FLAIR.nii.gz")) + \
            sorted(root.glob("sub-*/ses-*/anat/*_FLAIR.nii.gz")):
        stem = flair.name[:-len("_FLAIR.nii.gz")]
        channels = {c: flair.with_name(f"{stem}_{s}.nii.gz") for c, s in BIDS_SUFFIXES.items()}
        found[stem] = {c: p for c, p in channels.items() if p.is_file()}
    return found


def folder_subjects(root: Path) -> dict[str, dict[str, Path]]:
    """``<subject>/FLAIR.nii.gz`` with optional ``T1.nii.gz``/``T2.nii.gz``."""
    found = {}
    for folder in sorted(p for p in root.iterdir() if (p / "FLAIR.nii.gz").is_file()):
        found[folder.name] = {c: folder / f"{c}.nii.gz" for c in BIDS_SUFFIXES
                              if (folder / f"{c}.nii.gz").is_file()}
    return found


def find_subjects(root: Path) -> dict[str, dict[str, Path]]:
    """The subjects of a BIDS dataset or of a folder of subject folders."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--input {root}: not a folder")
    subjects = bids_subjects(root) or folder_subjects(root)
    if not subjects:
        raise UserError(f"--input {root}: no subject found (expected BIDS sub-*/anat/"
                        "*_FLAIR.nii.gz or <subject>/FLAIR.nii.gz)")
    return subjects


def model_channels(model_dirs: Sequence[Path], folds, available: dict[str, Path],
                   subject: str) -> list[str]:
    """The models' input channels (MSLesSeg names), checked against the subject's scans."""
    from mslesseg_nnunet.prediction import open_model

    channels = open_model(Path(model_dirs[0]), folds).channels
    missing = [c for c in channels if c.upper() not in available]
    if missing:
        raise UserError(f"--models {model_dirs[0]}: needs channel(s) {', '.join(missing)}, "
                        f"which subject {subject} does not have")
    return [c.upper() for c in channels]


def predict_mni(preprocessed: Path, channels: list[str], model_dirs, work: Path, options: dict):
    """``mslesseg predict`` on the preprocessed channels; (mask, probability) on the MSLesSeg grid."""
    from mslesseg_nnunet.prediction import predict_folder

    case = work / "input" / "P1"
    case.mkdir(parents=True)
    for channel in channels:
        os.symlink((preprocessed / f"{channel}.nii.gz").resolve(), case / f"P1_{channel}.nii.gz")
    out = work / "prediction"
    predict_folder(work / "input", out, model_dirs, save_probabilities=True, **options)
    mask = read_volume(out / "P1" / "P1_MASK.nii.gz").data
    probability = np.load(next((out / "probabilities").glob("*.npz")))["probability"]
    return mask, probability


def segment_subject(subject: str, inputs: dict[str, Path], model_dirs, out: Path,
                    preprocess_options: dict, predict_options: dict) -> dict:
    """Everything for one subject, written atomically to ``out``; returns its cohort row."""
    channels = model_channels(model_dirs, predict_options["folds"], inputs, subject)
    with atomic_dir(out) as tmp:
        provenance = preprocess(inputs, tmp / PREPROCESSED, **preprocess_options)
        with tempfile.TemporaryDirectory(prefix=".predict-", dir=tmp) as work:
            mask, probability = predict_mni(tmp / PREPROCESSED, channels, model_dirs,
                                               Path(work), predict_options)
        native_mask = native_volume(mask, tmp / PREPROCESSED, label=True)
        native_probability = native_volume(probability, tmp / PREPROCESSED, label=False)
        write_volume(tmp / MASK, native_mask.data, native_mask.header, np.uint8)
        write_volume(tmp / PROBABILITY, native_probability.data, native_probability.header,
                     np.float32)
        flair = read_volume(inputs["FLAIR"], np.float32)
        rows = lesion_table(native_mask.data > 0, native_mask.affine, flair=flair.data)
        write_csv(tmp / LESIONS, rows, list(LESION_COLUMNS))
        summary = scan_summary(rows)
        row = {"subject": subject, "lesions": summary["lesions"],
               "total_volume_mm3": summary["total_volume_mm3"],
               "flair_to_mni_mutual_information":
                   provenance["registration"]["flair_to_mni"]["mutual_information"]}
        write_json(tmp / SUMMARY, row)
        write_qc_page(tmp / QC, subject, flair.data, native_mask.data > 0, native_mask.affine,
                      rows, provenance)
    return row


def segment(subjects: dict[str, dict[str, Path]], model_dirs: Sequence[Path], out: Path,
            preprocess_options: dict, predict_options: dict) -> list[dict]:
    """Segment every subject (resuming), then write ``OUT/cohort.csv``; returns its rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for subject, inputs in tqdm(subjects.items(), desc="segment", unit="subject"):
        folder = out / subject
        if (folder / SUMMARY).is_file():
            rows.append(json.loads((folder / SUMMARY).read_text()))
            continue
        rows.append(segment_subject(subject, inputs, model_dirs, folder, preprocess_options,
                                    predict_options))
    write_csv(out / COHORT, rows, list(COHORT_COLUMNS))
    return rows
