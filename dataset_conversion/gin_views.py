"""Offline GIN views (MMS, MSLesSeg 2024 5th place; seed 000): a derived dataset holding every
training case plus ``views`` GIN-augmented copies of it, made once.

Each view applies :class:`mslesseg_nnunet.augmentation.GINTransform` (the
online GIN trainer's transform, fresh random convolutions per view) to the
whole multi-channel scan; voxels that are 0 in every channel (outside the
brain) stay 0 so that nnU-Net crops and normalises a view like its original.
A view ``<case>_ginNN`` keeps its original's label (linked) and patient.
``splits_final.json`` is the source's (or patient-grouped folds when it has
none) with each fold's training cases followed by their views; validation
holds originals only, and no view of a validation case is in its fold's training set.
Images and labels of the originals are linked, never copied.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.augmentation import GINTransform
from mslesseg_nnunet.dataset_conversion.back_conversion import load_case_map
from mslesseg_nnunet.dataset_conversion.cases import link_or_copy
from mslesseg_nnunet.dataset_conversion.merge import source_cases
from mslesseg_nnunet.dataset_conversion.parallel import check_workers, map_with_progress
from mslesseg_nnunet.atomic import write_json
from mslesseg_nnunet.dataset_conversion.raw_dataset import CASE_MAP, derived_target, nnunet_dir
from mslesseg_nnunet.dataset_conversion.relabel import link_images
from mslesseg_nnunet.dataset_json import load_dataset_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.folds import grouped_folds, write_splits
from mslesseg_nnunet.nifti import read_volume, write_volume

DEFAULT_VIEWS = 10


def view_id(case: str, view: int) -> str:
    """Case id of view ``view`` (1-based) of ``case``: ``<case>_gin01`` ..."""
    return f"{case}_gin{view:02d}"


def gin_views(image: np.ndarray, views: int, seed: int) -> Iterator[np.ndarray]:
    """``views`` GIN views of a (C, X, Y, Z) scan, one at a time, reproducible from ``seed``;
    voxels that are 0 in every channel stay 0."""
    foreground = (image != 0).any(0)
    source = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(views):
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=generator)))
            view = GINTransform()(image=source.clone())["image"].numpy()
        yield view * foreground


def write_case_views(case: str, images: Path, labels: Path, out: Path, channels: int, ending: str,
                     views: int, seed: int) -> None:
    """Write the ``views`` GIN views of one training case (images and linked labels) under ``out``."""
    volumes = [read_volume(images / f"{case}_{c:04d}{ending}") for c in range(channels)]
    shapes = {v.data.shape for v in volumes}
    if len(shapes) > 1:
        raise UserError(f"{images / case}_*{ending}: channels differ in shape {sorted(shapes)}")
    stacked = np.stack([v.data.astype(np.float32) for v in volumes])
    for index, view in enumerate(gin_views(stacked, views, seed), start=1):
        new = view_id(case, index)
        for c, volume in enumerate(volumes):
            write_volume(out / "imagesTr" / f"{new}_{c:04d}{ending}", view[c], volume.header, np.float32)
        link_or_copy(labels / f"{case}{ending}", out / "labelsTr" / f"{new}{ending}", allow_symlink=True)


def views_splits(folds: list[dict], views: int) -> list[dict]:
    """Each fold's training cases followed by their views; validation unchanged."""
    return [{"train": [*fold["train"], *(view_id(c, v) for c in fold["train"] for v in range(1, views + 1))],
             "val": list(fold["val"])} for fold in folds]


def view_case_map(entries: dict, views: int) -> dict:
    """The source's case-map entries plus one per view: same patient, ``gin_view_of`` the original,
    an output name with the view suffix (never the original's)."""
    out = dict(entries)
    for case, entry in entries.items():
        output = Path(entry.get("output", f"{case}.nii.gz"))
        stem, _, suffix = output.name.partition(".")
        for v in range(1, views + 1):
            out[view_id(case, v)] = {**entry, "gin_view_of": case,
                                     "output": str(output.with_name(f"{view_id(stem, v)}.{suffix}"))}
    return out


def source_folds(source: Path, cases: list[str], case_map: dict) -> list[dict]:
    """The source's ``splits_final.json``, else patient-grouped folds of ``cases``."""
    splits = nnunet_dir("nnUNet_preprocessed") / source.name / "splits_final.json"
    if splits.is_file():
        return json.loads(splits.read_text())
    return grouped_folds({c: case_map.get(c, {}).get("patient", c) for c in cases})


def gin_views_dataset(source_id: int, dataset_id: int, name: str | None = None, views: int = DEFAULT_VIEWS,
                      seed: int = 0, workers: int | None = None, overwrite: bool = False) -> Path:
    """Write ``$nnUNet_raw/DatasetMMM_<name>``: dataset ``source_id`` plus ``views`` GIN views of
    every training case (``name`` defaults to the source name + ``GIN``). Returns the folder."""
    if int(views) < 1:
        raise UserError(f"--views: must be at least 1, got {views}")
    workers = check_workers(workers)
    source, folder = derived_target(source_id, dataset_id, name, "GIN", overwrite)
    info = load_dataset_json(source / "dataset.json")
    cases = source_cases(source, info, "imagesTr")
    if not cases:
        raise UserError(f"{source / 'imagesTr'}: no training case")
    case_map = load_case_map(source) if (source / CASE_MAP).is_file() else {}
    folds = source_folds(source, cases, case_map)
    ending, channels = info["file_ending"], len(info["channel_names"])
    with atomic_dir(nnunet_dir("nnUNet_raw") / folder, overwrite) as tmp:
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            if (source / sub).is_dir():
                link_images(source / sub, tmp / sub)
        items = [(case, source / "imagesTr", source / "labelsTr", tmp, channels, ending, views, seed + index)
                 for index, case in enumerate(cases)]
        map_with_progress(write_case_views, items, workers, f"GIN views {folder}")
        write_json(tmp / "dataset.json", {
            **info, "numTraining": len(cases) * (views + 1),
            "description": f"{info.get('description', '')} With {views} offline GIN views per training "
                           f"case, by mslesseg-nnunet from {source.name}.".strip(),
            "gin_views": {"views": views, "seed": seed}, "source_dataset": source.name})
        if case_map:
            write_json(tmp / CASE_MAP, view_case_map(case_map, views))
        write_splits(nnunet_dir("nnUNet_preprocessed") / folder / "splits_final.json", views_splits(folds, views))
    return nnunet_dir("nnUNet_raw") / folder
