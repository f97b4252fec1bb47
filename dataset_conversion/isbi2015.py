"""ISBI 2015 longitudinal MS challenge -> nnU-Net raw dataset with patient-grouped folds.

Layout (any top folder name; ``.nii`` as distributed, ``.nii.gz`` accepted)::

    training/training01/preprocessed/training01_01_{flair,mprage,pd,t2}_pp.nii
    training/training01/masks/training01_01_mask{1,2}.nii
    testdata_website/test01/preprocessed/test01_01_{flair,mprage,pd,t2}_pp.nii

``orig/`` (unregistered raw scans) is ignored.
"""
from __future__ import annotations

import re
from pathlib import Path

from mslesseg_nnunet.dataset_conversion.cases import Scan
from mslesseg_nnunet.dataset_conversion.layouts import (find_root, nifti_ending,
                                                        parse_modalities, require_nifti)
from mslesseg_nnunet.dataset_conversion.parallel import check_workers
from mslesseg_nnunet.dataset_conversion.raw_dataset import check_dataset_id, write_grouped_dataset
from mslesseg_nnunet.errors import UserError

# channel name (shared with the other datasets) -> file key
ISBI_FILES = {"FLAIR": "flair", "T1": "mprage", "PD": "pd", "T2": "t2"}
ISBI_MODALITIES = tuple(ISBI_FILES)
ISBI_PREFIX = "ISBI2015"
# --label -> (rater masks, rule combining them)
ISBI_LABELS = {"mask1": (("mask1",), "single"), "mask2": (("mask2",), "single"),
               "union": (("mask1", "mask2"), "union"),
               "intersection": (("mask1", "mask2"), "intersection")}
_PATIENT = re.compile(r"^(training|test)\d+$")
_SCAN = re.compile(r"^(?P<patient>.+)_(?P<tp>\d+)_(flair|mprage|pd|t2)_pp\.nii(\.gz)?$")
DESCRIPTION = ("ISBI 2015 longitudinal MS lesion segmentation challenge, converted by "
               "mslesseg-nnunet from {src}; label: {label}. Source: Carass et al., NeuroImage "
               "2017 (doi 10.1016/j.neuroimage.2016.12.064), "
               "https://smart-stats-tools.org/lesion-challenge-2015; licence: the challenge's "
               "data-use terms.")


def isbi_patient_dirs(folder: Path) -> list[Path]:
    """``training01``/``test01`` folders (holding ``preprocessed/``) of a subset folder."""
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and _PATIENT.match(p.name) and (p / "preprocessed").is_dir())


def isbi_patient_scans(pdir: Path, modalities: list[str], label: str | None,
                       subset: str) -> list[Scan]:
    """Every timepoint of one ISBI patient folder; ``label`` None: take no mask."""
    pre = pdir / "preprocessed"
    timepoints = sorted({m.group("tp") for p in pre.iterdir()
                         if (m := _SCAN.match(p.name)) and m.group("patient") == pdir.name})
    if not timepoints:
        raise UserError(f"{pre}: no {pdir.name}_NN_<modality>_pp.nii scan")
    raters, rule = ISBI_LABELS[label] if label is not None else ((), "single")
    scans = []
    for tp in timepoints:
        stem = f"{pdir.name}_{tp}"
        images = {m: require_nifti(pre, f"{stem}_{ISBI_FILES[m]}_pp", f"{m} modality")
                  for m in modalities}
        labels = tuple(require_nifti(pdir / "masks", f"{stem}_{r}", f"mask for --label {label}")
                       for r in raters)
        ending = nifti_ending(next(iter(images.values())))
        scans.append(Scan(f"{ISBI_PREFIX}_{stem}", pdir.name, images, labels, rule,
                          output=f"{pdir.name}/masks/{stem}_mask{ending}",
                          info={"timepoint": tp, "set": subset}))
    return scans


def isbi_folder_scans(folder: Path, modalities: list[str], label: str | None,
                      subset: str) -> list[Scan]:
    """The scans of every patient of an ISBI subset folder (``training/``, ...)."""
    return [s for pdir in isbi_patient_dirs(folder)
            for s in isbi_patient_scans(pdir, modalities, label, subset)]


def isbi_scans(src: Path, modalities: list[str], label: str) -> tuple[list[Scan], list[Scan]]:
    """(training scans with ``label``, test scans) of an ISBI 2015 root; test patients
    get masks only when their folder has ``masks/``."""
    if label not in ISBI_LABELS:
        raise UserError(f"--label: must be one of {', '.join(ISBI_LABELS)}, got {label!r}")
    root = find_root(src, ("training", "testdata_website"), "ISBI 2015 dataset")
    train = (isbi_folder_scans(root / "training", modalities, label, "train")
             if (root / "training").is_dir() else [])
    if not train:
        raise UserError(f"{root / 'training'}: no training scans (expected "
                        "trainingNN/preprocessed/ folders)")
    test = []
    if (root / "testdata_website").is_dir():
        for pdir in isbi_patient_dirs(root / "testdata_website"):
            test += isbi_patient_scans(pdir, modalities,
                                       label if (pdir / "masks").is_dir() else None, "test")
    return train, test


def convert_isbi2015(src: Path, dataset_id: int, name: str = "ISBI2015",
                     modalities: str | list[str] | None = None, label: str = "union",
                     workers: int | None = None, overwrite: bool = False) -> Path:
    """Convert an ISBI 2015 root to ``$nnUNet_raw/DatasetNNN_<name>``.

    Channels follow ``modalities`` (default FLAIR, T1 = MPRAGE, PD, T2); ``label``:
    "mask1", "mask2" (one rater), "union" (default; seed 002's two-rater
    consensus) or "intersection". Case ids ``ISBI2015_training01_01``; every
    timepoint of a patient lands in the same fold. Returns the dataset folder.
    """
    modalities = parse_modalities(modalities, ISBI_MODALITIES)
    workers = check_workers(workers)
    folder = check_dataset_id(dataset_id, name, overwrite)
    train, test = isbi_scans(src, modalities, label)
    return write_grouped_dataset(
        folder, train, test, modalities, DESCRIPTION.format(src=Path(src).name, label=label),
        workers, overwrite, reference="https://smart-stats-tools.org/lesion-challenge-2015",
        source={"dataset": "ISBI2015", "modalities": modalities, "label": label})
