"""MSLesSeg (ICPR 2024) as distributed -> nnU-Net raw dataset with patient-grouped folds."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.dataset_conversion.layouts import mslesseg_scans, parse_modalities
from mslesseg_nnunet.dataset_conversion.parallel import check_workers
from mslesseg_nnunet.dataset_conversion.raw_dataset import (check_dataset_id, dataset_json,
                                                            write_raw_dataset)
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.folds import grouped_folds, paper_folds

FOLD_SCHEMES = ("grouped", "paper")
DESCRIPTION = ("MSLesSeg: multiple sclerosis lesion segmentation (ICPR 2024 competition), "
               "converted by mslesseg-nnunet from {src}. Source: Guarnera, Rondinella et al., "
               "Scientific Data 2025, figshare doi 10.6084/m9.figshare.27919209. "
               "Licence: CC-BY-4.0.")


def convert_mslesseg(src: Path, dataset_id: int, name: str = "MSLesSeg",
                     modalities: str | list[str] | None = None, folds: str = "grouped",
                     workers: int | None = None, overwrite: bool = False) -> Path:
    """Convert an MSLesSeg dataset root to ``$nnUNet_raw/DatasetNNN_<name>``.

    Training scans go to imagesTr/labelsTr (case ``MSLesSeg_P01_T1``), test
    scans to imagesTs (and labelsTs when the test masks are present, case
    ``MSLesSeg_P54``); channels follow ``modalities``. Writes
    ``splits_final.json`` (``folds``: "grouped" = 5 patient-grouped folds
    balanced by scan count; "paper" = the data descriptor's table as printed).
    Returns the dataset folder.
    """
    modalities = parse_modalities(modalities)
    if folds not in FOLD_SCHEMES:
        raise UserError(f"--folds: must be one of {', '.join(FOLD_SCHEMES)}, got {folds!r}")
    workers = check_workers(workers)
    folder = check_dataset_id(dataset_id, name, overwrite)
    train, test = mslesseg_scans(src, modalities)
    case_patients = {s.case_id: s.patient for s in train}
    if folds == "paper":
        splits = paper_folds(case_patients, {s.patient: int(s.patient[1:]) for s in train})
    else:
        splits = grouped_folds(case_patients)
    info = dataset_json(name, modalities, len(train), len(test),
                        DESCRIPTION.format(src=Path(src).name),
                        reference="https://doi.org/10.6084/m9.figshare.27919209",
                        licence="CC-BY-4.0",
                        source={"dataset": "MSLesSeg", "modalities": modalities, "folds": folds})
    return write_raw_dataset(folder, train, test, info, splits, workers, overwrite)
