"""Cross-validation folds that never split a patient, in nnU-Net's ``splits_final.json`` form.

nnU-Net reads ``$nnUNet_preprocessed/DatasetNNN_Name/splits_final.json``: a
list with one ``{"train": [case ids], "val": [case ids]}`` per fold.
"""
from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from mslesseg_nnunet.atomic import write_json
from mslesseg_nnunet.errors import UserError

N_FOLDS = 5
SEED = 12345

# The MSLesSeg data descriptor's fixed 5-fold table (1-based patient numbers,
# inclusive ranges), reproduced exactly as printed. As printed it is not a
# partition: fold 4 trains on patient 23, which is also in its validation set,
# and patients 11-13 are in no validation set at all.
PAPER_TABLE = [
    {"train": [(1, 43)], "val": [(44, 53)]},
    {"train": [(1, 33), (44, 53)], "val": [(34, 43)]},
    {"train": [(1, 23), (34, 53)], "val": [(24, 33)]},
    {"train": [(1, 13), (23, 53)], "val": [(14, 23)]},
    {"train": [(11, 53)], "val": [(1, 10)]},
]


def cases_by_patient(case_patients: dict[str, str]) -> dict[str, list[str]]:
    """Group case ids by patient: {patient: sorted case ids}."""
    groups: dict[str, list[str]] = defaultdict(list)
    for case, patient in case_patients.items():
        groups[patient].append(case)
    return {p: sorted(c) for p, c in groups.items()}


def grouped_folds(case_patients: dict[str, str], n_folds: int = N_FOLDS,
                  seed: int = SEED) -> list[dict[str, list[str]]]:
    """Patient-grouped folds balanced by scan count.

    Patients are shuffled with ``seed``, then (largest scan count first) each
    goes to the fold that holds the fewest scans so far. With fewer patients
    than ``n_folds``, there is one fold per patient.

    Parameters
    ----------
    case_patients : {case id: patient id} for every training case.
    """
    groups = cases_by_patient(case_patients)
    if len(groups) < 2:
        raise UserError(f"training data: patient-grouped folds need at least 2 patients, "
                        f"found {len(groups)}")
    n_folds = min(n_folds, len(groups))
    patients = sorted(groups)
    random.Random(seed).shuffle(patients)
    patients.sort(key=lambda p: -len(groups[p]))  # stable: ties keep the shuffled order
    val: list[list[str]] = [[] for _ in range(n_folds)]
    for patient in patients:
        fold = min(range(n_folds), key=lambda f: (len(val[f]), f))
        val[fold].extend(groups[patient])
    return _folds_from_val(sorted(case_patients), val)


def paper_folds(case_patients: dict[str, str],
                patient_numbers: dict[str, int]) -> list[dict[str, list[str]]]:
    """The data descriptor's fixed patient table (``PAPER_TABLE``) as case-id folds.

    Parameters
    ----------
    case_patients : {case id: patient id}.
    patient_numbers : {patient id: patient number as in the table (P7 -> 7)}.
    """
    groups = cases_by_patient(case_patients)
    in_table = {n for fold in PAPER_TABLE for part in fold.values() for lo, hi in part
                for n in range(lo, hi + 1)}
    outside = sorted(p for p in groups if patient_numbers[p] not in in_table)
    if outside:
        raise UserError(f"--folds paper: patients {', '.join(outside)} are not in the data "
                        "descriptor's table (patients 1-53)")
    folds = []
    for index, fold in enumerate(PAPER_TABLE, start=1):
        split = {key: sorted(c for p, cases in groups.items()
                             if any(lo <= patient_numbers[p] <= hi for lo, hi in ranges)
                             for c in cases)
                 for key, ranges in fold.items()}
        if not split["val"] or not split["train"]:
            raise UserError(f"--folds paper: fold {index} has no "
                            f"{'validation' if not split['val'] else 'training'} case in this "
                            "data (the table needs patients 1-53)")
        folds.append(split)
    return folds


def _folds_from_val(cases: list[str], val: list[list[str]]) -> list[dict[str, list[str]]]:
    return [{"train": [c for c in cases if c not in set(v)], "val": sorted(v)} for v in val]


def write_splits(path: Path, folds: list[dict[str, list[str]]]) -> None:
    """Write ``splits_final.json`` atomically."""
    write_json(path, folds)
