"""MSSEG-2 (MICCAI 2021 new lesions) -> nnU-Net raw dataset with patient-grouped folds."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.dataset_conversion.layouts import MSSEG2_CHANNELS, msseg2_scans
from mslesseg_nnunet.dataset_conversion.parallel import check_workers
from mslesseg_nnunet.dataset_conversion.raw_dataset import check_dataset_id, write_grouped_dataset

DESCRIPTION = ("MSSEG-2: new multiple sclerosis lesions between two FLAIR scans (MICCAI 2021), "
               "converted by mslesseg-nnunet from {src}; label source: {label}. Source: "
               "Commowick et al., MSSEG-2 challenge (Inria-Empenn); licence: the challenge's "
               "data-use terms.")


def convert_msseg2(src: Path, dataset_id: int, name: str = "MSSEG2", label: str = "consensus",
                   workers: int | None = None, overwrite: bool = False) -> Path:
    """Convert an MSSEG-2 root (``training/``, ``testing/``) to ``$nnUNet_raw/DatasetNNN_<name>``.

    Channels time01, time02; label = new lesions from ``label`` ("consensus",
    "expert1".."expert4", or "majority" = at least 3 of the 4 experts).
    Patients with an empty ground truth are kept; patients without ground
    truth go to imagesTs. Case ids ``MSSEG2_013``. Writes 5 patient-grouped
    folds. Returns the dataset folder.
    """
    workers = check_workers(workers)
    folder = check_dataset_id(dataset_id, name, overwrite)
    train, test = msseg2_scans(src, label)
    return write_grouped_dataset(folder, train, test, list(MSSEG2_CHANNELS),
                                 DESCRIPTION.format(src=Path(src).name, label=label), workers,
                                 overwrite, reference="https://github.com/Inria-Empenn/"
                                                      "lesion-segmentation-challenge-miccai21",
                                 source={"dataset": "MSSEG-2", "label": label})
