"""MICCAI 2016 MSSEG (public 2021 release) -> nnU-Net raw dataset, centre kept per case.

Layout (any top folder name; ``.nii.gz`` as distributed, ``.nii`` accepted)::

    Training/Center_01/Patient_01/Preprocessed_Data/{FLAIR,T1,T2,DP,GADO}_preprocessed.nii.gz
    Training/Center_01/Patient_01/Masks/{Consensus,ManualSegmentation_1..7,Brain_Mask}.nii.gz
    Testing/Center_{01,03,07,08}/Patient_NN/   (the same, masks included)

The 2016 challenge-portal layout (``01016SACH/3DFLAIR.nii.gz`` ..., raw images
on different grids) is refused.
"""
from __future__ import annotations

import re
from pathlib import Path

from mslesseg_nnunet.dataset_conversion.cases import Scan
from mslesseg_nnunet.dataset_conversion.layouts import (find_root, nifti_ending,
                                                        numbered_subdirs, parse_modalities,
                                                        require_nifti)
from mslesseg_nnunet.dataset_conversion.parallel import check_workers
from mslesseg_nnunet.dataset_conversion.raw_dataset import check_dataset_id, write_grouped_dataset
from mslesseg_nnunet.errors import UserError

# channel name (shared with the other datasets) -> file stem
MSSEG2016_FILES = {"FLAIR": "FLAIR", "T1": "T1", "T2": "T2", "PD": "DP", "T1POST": "GADO"}
MSSEG2016_MODALITIES = tuple(MSSEG2016_FILES)
MSSEG2016_PREFIX = "MSSEG2016"
N_RATERS = 7
RATERS = tuple(f"ManualSegmentation_{k}" for k in range(1, N_RATERS + 1))
# --label -> (mask stems, rule combining them)
MSSEG2016_LABELS = {"consensus": (("Consensus",), "single"),
                    **{f"rater{k}": ((r,), "single") for k, r in enumerate(RATERS, start=1)},
                    "majority": (RATERS, "majority")}
SUBSETS = {"Training": "train", "Testing": "test"}
TRAIN_ON = {"training": ("Training",), "testing": ("Testing",), "both": ("Training", "Testing")}
_CENTRE = re.compile(r"^Center_(\d+)$")
_PATIENT = re.compile(r"^Patient_(\d+)$")
_PORTAL_PATIENT = re.compile(r"^\d{5}[A-Z]{4}$")
DESCRIPTION = ("MSSEG-2016: MICCAI 2016 MS lesion segmentation challenge (public 2021 release), "
               "converted by mslesseg-nnunet from {src}; label: {label}; trained on: {train_on}. "
               "Source: Commowick et al., Scientific Reports 2018 (doi 10.1038/s41598-018-"
               "31911-7), Shanoir / Inria; licence: the data-use terms of the release.")


def refuse_portal_layout(src: Path) -> None:
    """Raise UserError if ``src`` holds the 2016 challenge-portal layout."""
    for depth in ("", "*/", "*/*/"):
        for path in Path(src).glob(f"{depth}*"):
            if path.is_dir() and (_PORTAL_PATIENT.match(path.name)
                                  or any(path.glob("3DFLAIR.nii*"))):
                raise UserError(
                    f"{path}: 2016 challenge-portal layout (raw 3DFLAIR/3DT1/... on different "
                    "grids) is not supported; use the preprocessed public release "
                    "(Training/Center_NN/Patient_NN/Preprocessed_Data/)")


def msseg2016_centre_dirs(folder: Path) -> list[tuple[int, Path]]:
    """``Center_NN`` folders (holding ``Patient_NN/``) of a subset folder, as (NN, path)."""
    return [(n, c) for n, c in numbered_subdirs(folder, _CENTRE) if numbered_subdirs(c, _PATIENT)]


def msseg2016_folder_scans(folder: Path, modalities: list[str], label: str | None,
                           subset: str, require_masks: bool = True) -> list[Scan]:
    """Every ``Center_NN/Patient_NN`` of a subset folder (``Training/``, ``Testing/``).

    ``label`` None: take no mask; else the chosen mask(s) of every patient, or
    (``require_masks`` False) of every patient that has a ``Masks/`` folder.
    """
    scans = []
    for centre, cdir in msseg2016_centre_dirs(folder):
        for number, pdir in numbered_subdirs(cdir, _PATIENT):
            take = label is not None and (require_masks or (pdir / "Masks").is_dir())
            stems, rule = MSSEG2016_LABELS[label] if take else ((), "single")
            images = {m: require_nifti(pdir / "Preprocessed_Data",
                                       f"{MSSEG2016_FILES[m]}_preprocessed", f"{m} modality")
                      for m in modalities}
            labels = tuple(require_nifti(pdir / "Masks", s, f"mask for --label {label}")
                           for s in stems)
            ending = nifti_ending(next(iter(images.values())))
            patient = f"{subset}_C{centre:02d}_P{number:02d}"
            scans.append(Scan(f"{MSSEG2016_PREFIX}_{patient}", patient, images, labels, rule,
                              output=f"{folder.name}/{cdir.name}/{pdir.name}/segmentation{ending}",
                              info={"centre": cdir.name, "set": subset}))
    return scans


def msseg2016_scans(src: Path, modalities: list[str], label: str,
                    train_on: str = "training") -> tuple[list[Scan], list[Scan]]:
    """(training scans, test scans) of an MSSEG-2016 root: the ``train_on`` subsets are
    training scans (masks required), the others test scans (masks when present)."""
    if label not in MSSEG2016_LABELS:
        raise UserError(f"--label: must be one of {', '.join(MSSEG2016_LABELS)}, got {label!r}")
    if train_on not in TRAIN_ON:
        raise UserError(f"--train-on: must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
    refuse_portal_layout(src)
    root = find_root(src, tuple(SUBSETS), "MSSEG-2016 dataset")
    train, test = [], []
    for subset, short in SUBSETS.items():
        if not (root / subset).is_dir():
            continue
        if subset in TRAIN_ON[train_on]:
            train += msseg2016_folder_scans(root / subset, modalities, label, short)
        else:
            test += msseg2016_folder_scans(root / subset, modalities, label, short,
                                           require_masks=False)
    if not train:
        raise UserError(f"{root}: no patient in {' or '.join(TRAIN_ON[train_on])}/ "
                        "(expected Center_NN/Patient_NN/ folders)")
    return train, test


def convert_msseg2016(src: Path, dataset_id: int, name: str = "MSSEG2016",
                      modalities: str | list[str] | None = None, label: str = "consensus",
                      train_on: str = "training", workers: int | None = None,
                      overwrite: bool = False) -> Path:
    """Convert an MSSEG-2016 root (``Training/``, ``Testing/``) to
    ``$nnUNet_raw/DatasetNNN_<name>``.

    Channels follow ``modalities`` (default FLAIR, T1, T2, PD = DP, T1POST = GADO); ``label``:
    "consensus" (default, the challenge's reference), "rater1".."rater7" or
    "majority" (at least 4 of the 7 raters). ``train_on``: which subset(s) go to
    imagesTr ("training", "testing" or "both"); the other to imagesTs/labelsTs.
    Case ids ``MSSEG2016_train_C01_P01``; the centre is kept in ``case_map.json``.
    Returns the dataset folder.
    """
    modalities = parse_modalities(modalities, MSSEG2016_MODALITIES)
    workers = check_workers(workers)
    folder = check_dataset_id(dataset_id, name, overwrite)
    train, test = msseg2016_scans(src, modalities, label, train_on)
    return write_grouped_dataset(
        folder, train, test, modalities,
        DESCRIPTION.format(src=Path(src).name, label=label, train_on=train_on), workers,
        overwrite, reference="https://doi.org/10.1038/s41598-018-31911-7",
        source={"dataset": "MSSEG2016", "modalities": modalities, "label": label,
                "train_on": train_on})
