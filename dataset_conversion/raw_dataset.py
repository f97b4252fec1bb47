"""Writing an nnU-Net raw dataset folder: images, labels, dataset.json, case_map.json, splits.

The folder ``$nnUNet_raw/DatasetNNN_Name`` appears atomically (built in a
temporary sibling); ``splits_final.json`` goes to
``$nnUNet_preprocessed/DatasetNNN_Name/``.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

from mslesseg_nnunet.atomic import atomic_dir, check_no_overlap, claim, write_json
from mslesseg_nnunet.dataset_conversion.cases import FILE_ENDING, Scan, write_scan
from mslesseg_nnunet.dataset_conversion.parallel import map_with_progress
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.folds import grouped_folds, write_splits
from mslesseg_nnunet.nnunet_env import NNUNET_DIRS, nnunet_environment
from mslesseg_nnunet.vocabulary import DATASET_NAME, DATASET_NAME_RULE, dataset_folder

CASE_MAP = "case_map.json"


def nnunet_dir(var: str) -> Path:
    """The folder named by nnU-Net variable ``var`` (``nnUNet_raw`` ...)."""
    return Path(nnunet_environment()[var])


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset101_MSLesSeg``; raise UserError for an invalid id or name."""
    if not 1 <= int(dataset_id) <= 999:
        raise UserError(f"--dataset-id: must be between 1 and 999, got {dataset_id}")
    if not DATASET_NAME.match(name):
        raise UserError(f"--name: {DATASET_NAME_RULE}, got {name!r}")
    return dataset_folder(dataset_id, name)


def datasets_with_id(dataset_id: int) -> list[Path]:
    """Every ``DatasetNNN_*`` folder with this id in nnU-Net's raw, preprocessed and results."""
    prefix = f"Dataset{int(dataset_id):03d}_"
    found = []
    for var in NNUNET_DIRS:
        root = nnunet_dir(var)
        if root.is_dir():
            found += [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return found


def check_dataset_id(dataset_id: int, name: str, overwrite: bool) -> str:
    """Raise UserError if the id is used by another name, or (without ``overwrite``) by
    this one; return the folder name."""
    folder = dataset_folder_name(dataset_id, name)
    for path in datasets_with_id(dataset_id):
        if path.name != folder:
            raise UserError(f"--dataset-id {dataset_id}: already used by {path} "
                            "(choose another id)")
    raw = nnunet_dir("nnUNet_raw") / folder
    splits = nnunet_dir("nnUNet_preprocessed") / folder / "splits_final.json"
    for path in (raw, splits):
        if path.exists() and not overwrite:
            raise UserError(f"{path}: already exists (use --overwrite to replace it)")
    return folder


def drop_preprocessed(folder_name: str) -> None:
    """Remove the plans and preprocessed data of a dataset being replaced (they describe its
    old images), saying so; its ``splits_final.json`` is rewritten by the caller."""
    folder = nnunet_dir("nnUNet_preprocessed") / folder_name
    stale = [p for p in folder.iterdir() if p.name != "splits_final.json"] if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if stale:
        print(f"removed {len(stale)} plans/preprocessed entries of the replaced dataset from "
              f"{folder}: run nnUNetv2_plan_and_preprocess again")


@contextlib.contextmanager
def claim_dataset_id(dataset_id: int) -> Iterator[None]:
    """Hold the dataset id for a whole run (``atomic.claim``): a concurrent second run
    converting to the same id is refused."""
    with claim(nnunet_dir("nnUNet_raw") / f"Dataset{int(dataset_id):03d}"):
        yield


def find_raw_dataset(dataset_id: int, option: str = "--source") -> Path:
    """The raw folder of dataset ``dataset_id`` (given by ``option``); raise UserError if there
    is none."""
    raw = nnunet_dir("nnUNet_raw")
    matches = [p for p in datasets_with_id(dataset_id) if p.parent == raw]
    if not matches:
        raise UserError(f"{option} {dataset_id}: no Dataset{int(dataset_id):03d}_* folder in {raw}")
    return matches[0]


def derived_target(source_id: int, dataset_id: int, name: str | None, suffix: str,
                   overwrite: bool) -> tuple[Path, str]:
    """(raw folder of dataset ``source_id``, folder name of the dataset derived from it): the ids must
    differ, ``name`` defaults to the source's name + ``suffix`` (checked by ``check_dataset_id``)."""
    source = find_raw_dataset(source_id)
    if int(dataset_id) == int(source_id):
        raise UserError(f"--dataset-id {dataset_id}: must differ from --source")
    name = name or f"{source.name.split('_', 1)[1]}{suffix}"
    return source, check_dataset_id(dataset_id, name, overwrite)


def dataset_json(name: str, channels: list[str], n_train: int, n_test: int,
                 description: str, **extra) -> dict:
    """nnU-Net's ``dataset.json`` for a binary lesion dataset, with our ``lesion_labels``."""
    return {
        "name": name,
        "description": description,
        "channel_names": {str(i): c for i, c in enumerate(channels)},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": n_train,
        "numTest": n_test,
        "file_ending": FILE_ENDING,
        "lesion_labels": [1],
        "labelling": {"kind": "binary"},
        **extra,
    }


def write_raw_dataset(folder_name: str, train: list[Scan], test: list[Scan], info: dict,
                      folds: list[dict], workers: int, overwrite: bool) -> Path:
    """Write ``$nnUNet_raw/<folder_name>`` and its ``splits_final.json``.

    Parameters
    ----------
    info : the ``dataset.json`` content.
    folds : ``splits_final.json`` content (list of {"train", "val"}).

    Returns the dataset folder. On any error nothing is left behind.
    """
    raw = nnunet_dir("nnUNet_raw") / folder_name
    check_no_overlap(raw, [p for s in train + test for p in (*s.images.values(), *s.labels)],
                     "--dataset-id")
    with atomic_dir(raw, overwrite) as tmp:
        for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if test else ()):
            (tmp / sub).mkdir()
        items = ([(s, tmp / "imagesTr", tmp / "labelsTr") for s in train]
                 + [(s, tmp / "imagesTs", tmp / "labelsTs") for s in test])
        entries = map_with_progress(write_scan, items, workers, f"convert {folder_name}")
        write_json(tmp / "dataset.json", info)
        write_json(tmp / CASE_MAP, {s.case_id: e for s, e in zip(train + test, entries)})
        drop_preprocessed(folder_name)
        write_splits(nnunet_dir("nnUNet_preprocessed") / folder_name / "splits_final.json", folds)
    return raw


def write_grouped_dataset(folder_name: str, train: list[Scan], test: list[Scan],
                          channels: list[str], description: str, workers: int, overwrite: bool,
                          **extra) -> Path:
    """``write_raw_dataset`` with 5 patient-grouped folds (``grouped_folds``) and a binary
    lesion ``dataset.json`` (``extra``: more of its keys, e.g. reference, licence, source)."""
    splits = grouped_folds({s.case_id: s.patient for s in train})
    info = dataset_json(folder_name.split("_", 1)[1], channels, len(train), len(test),
                        description, **extra)
    return write_raw_dataset(folder_name, train, test, info, splits, workers, overwrite)
