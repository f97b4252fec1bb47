"""A derived nnU-Net dataset with multi-size (MSL) or distance-based (DBL) labels.

Images are linked (hardlink, else symlink, else copy), never duplicated;
case ids, ``case_map.json`` and ``splits_final.json`` are the source's.
Labels are computed on whole scans from the source's collapsed lesion mask.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.components import LESION_CONNECTIVITY, check_connectivity
from mslesseg_nnunet.dataset_conversion.cases import link_or_copy
from mslesseg_nnunet.dataset_conversion.parallel import check_workers, map_with_progress
from mslesseg_nnunet.dataset_conversion.raw_dataset import (CASE_MAP, derived_target,
                                                            drop_preprocessed, nnunet_dir,
                                                            write_json)
from mslesseg_nnunet.dataset_json import lesion_labels, load_dataset_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.folds import write_splits
from mslesseg_nnunet.labelling import (DEFAULT_DISTANCE2, DEFAULT_THRESHOLDS, check_thresholds,
                                       collapse, distance_labels, multi_size_labels,
                                       size_class_names)
from mslesseg_nnunet.nifti import read_volume, write_volume

KINDS = ("msl", "dbl")


def labelling_spec(kind: str, connectivity: int = LESION_CONNECTIVITY,
                   thresholds=DEFAULT_THRESHOLDS, distance2: float = DEFAULT_DISTANCE2) -> dict:
    """The ``labelling`` record of a derived dataset: kind and its parameters (validated)."""
    if kind == "msl":
        return {"kind": "msl", "connectivity": check_connectivity(connectivity),
                "thresholds": list(check_thresholds(thresholds))}
    if kind == "dbl":
        if not float(distance2) > 0:
            raise UserError(f"--distance2: must be a positive number, got {distance2}")
        return {"kind": "dbl", "distance2": float(distance2)}
    raise UserError(f"labelling: must be one of {', '.join(KINDS)}, got {kind!r}")


def class_names(spec: dict) -> list[str]:
    """Names of the foreground classes 1..K of a labelling."""
    if spec["kind"] == "msl":
        return size_class_names(spec["thresholds"])
    return ["boundary", "interior"]


def relabel_mask(mask: np.ndarray, spec: dict) -> np.ndarray:
    """Apply labelling ``spec`` to a binary mask (whole scan)."""
    if spec["kind"] == "msl":
        return multi_size_labels(mask, spec["connectivity"], spec["thresholds"])
    return distance_labels(mask, spec["distance2"])


def relabel_file(src: Path, dst: Path, spec: dict, source_lesion: list[int]) -> None:
    """Read a source label file, collapse it to lesion/background, relabel, write uint8."""
    volume = read_volume(src)
    allowed = np.array([0, *source_lesion])
    if not np.isin(volume.data, allowed).all():
        raise UserError(f"{src}: label values outside {allowed.tolist()} of the source dataset")
    write_volume(dst, relabel_mask(collapse(volume.data, source_lesion), spec), volume.header,
                 dtype=np.uint8)


def derived_dataset_json(source: dict, source_folder: str, spec: dict) -> dict:
    """The source's ``dataset.json`` with the derived labels, lesion labels and labelling."""
    names = class_names(spec)
    return {
        **source,
        "description": f"{source.get('description', '')} Relabelled by mslesseg-nnunet from "
                       f"{source_folder}: {spec}.".strip(),
        "labels": {"background": 0, **{n: i for i, n in enumerate(names, start=1)}},
        "lesion_labels": list(range(1, len(names) + 1)),
        "labelling": spec,
        "source_dataset": source_folder,
    }


def link_images(src: Path, dst: Path) -> None:
    """Link every file of image folder ``src`` into a new folder ``dst``."""
    dst.mkdir()
    for path in sorted(src.iterdir()):
        link_or_copy(path, dst / path.name, allow_symlink=True)


def relabel_dataset(kind: str, source_id: int, dataset_id: int, name: str | None = None,
                    connectivity: int = LESION_CONNECTIVITY, thresholds=DEFAULT_THRESHOLDS,
                    distance2: float = DEFAULT_DISTANCE2, workers: int | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``$nnUNet_raw/DatasetMMM_<name>``: dataset ``source_id`` relabelled by ``kind``.

    ``name`` defaults to the source name + ``MSL``/``DBL``. Returns the folder.
    """
    spec = labelling_spec(kind, connectivity, thresholds, distance2)
    workers = check_workers(workers)
    source, folder = derived_target(source_id, dataset_id, name, kind.upper(), overwrite)
    info = load_dataset_json(source / "dataset.json")
    source_lesion = lesion_labels(info)
    label_dirs = [d for d in ("labelsTr", "labelsTs") if (source / d).is_dir()]
    if "labelsTr" not in label_dirs:
        raise UserError(f"{source / 'labelsTr'}: folder not found")
    with atomic_dir(nnunet_dir("nnUNet_raw") / folder, overwrite) as tmp:
        for sub in ("imagesTr", "imagesTs"):
            if (source / sub).is_dir():
                link_images(source / sub, tmp / sub)
        items = []
        for sub in label_dirs:
            (tmp / sub).mkdir()
            items += [(p, tmp / sub / p.name, spec, source_lesion)
                      for p in sorted((source / sub).glob(f"*{info['file_ending']}"))]
        map_with_progress(relabel_file, items, workers, f"relabel {folder}")
        write_json(tmp / "dataset.json", derived_dataset_json(info, source.name, spec))
        if (source / CASE_MAP).is_file():
            shutil.copyfile(source / CASE_MAP, tmp / CASE_MAP)
        drop_preprocessed(folder)
        copy_splits(source.name, folder)
    return nnunet_dir("nnUNet_raw") / folder


def copy_splits(source_folder: str, folder: str) -> None:
    """Copy the source's ``splits_final.json`` (if any) to the derived dataset's
    preprocessed folder."""
    preprocessed = nnunet_dir("nnUNet_preprocessed")
    src = preprocessed / source_folder / "splits_final.json"
    if src.is_file():
        write_splits(preprocessed / folder / "splits_final.json", json.loads(src.read_text()))
