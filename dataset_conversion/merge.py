"""One nnU-Net raw dataset made of several converted ones (cross-dataset training).

Images and labels are linked (hardlink, else symlink, else copy), never
rewritten. Each case id gets its source dataset's name as prefix
(``SynthA_MSLesSeg_P01_T1``), so ids stay unique; channels are matched by name
(case-insensitively) in each source's ``dataset.json``; ``case_map.json``
entries keep their source files, with prefixed patients and outputs, so
predictions still write back to the sources' naming; ``splits_final.json``
holds patient-grouped folds over the merged cases.
"""
from __future__ import annotations

import re
from pathlib import Path

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.dataset_conversion.back_conversion import load_case_map
from mslesseg_nnunet.dataset_conversion.cases import link_or_copy
from mslesseg_nnunet.dataset_conversion.raw_dataset import (CASE_MAP, check_dataset_id,
                                                            drop_preprocessed,
                                                            find_raw_dataset, nnunet_dir,
                                                            write_json)
from mslesseg_nnunet.dataset_json import lesion_labels, load_dataset_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.folds import grouped_folds, write_splits

SPLITS = (("imagesTr", "labelsTr"), ("imagesTs", "labelsTs"))


def channel_order(info: dict, channels: list[str], where: Path) -> list[int]:
    """Index in a source of each wanted channel name; UserError naming ``where`` when missing."""
    names = {str(n).casefold(): int(i) for i, n in info.get("channel_names", {}).items()}
    order = []
    for channel in channels:
        if channel.casefold() not in names:
            have = ", ".join(info.get("channel_names", {}).values()) or "none"
            raise UserError(f"{where}: no channel {channel!r} (it has {have}); merge only channels "
                            "every source has (--channels)")
        order.append(names[channel.casefold()])
    return order


def source_cases(folder: Path, info: dict, images: str) -> list[str]:
    """Case ids of ``folder/images`` from its ``{case}_0000`` files."""
    pattern = re.compile(rf"^(.+)_0000{re.escape(info['file_ending'])}$")
    return sorted(m.group(1) for p in (folder / images).glob(f"*_0000{info['file_ending']}")
                  if (m := pattern.match(p.name)))


def link_cases(folder: Path, info: dict, order: list[int], prefix: str, out: Path) -> dict:
    """Link one source's images (channels ``order``) and labels into ``out`` under prefixed
    case ids; return the number of cases per image folder."""
    ending = info["file_ending"]
    counts = {}
    for images, labels in SPLITS:
        cases = source_cases(folder, info, images)
        for case in cases:
            new = f"{prefix}_{case}"
            (out / images).mkdir(exist_ok=True)
            for new_index, index in enumerate(order):
                link_or_copy(folder / images / f"{case}_{index:04d}{ending}",
                             out / images / f"{new}_{new_index:04d}{ending}", allow_symlink=True)
            label = folder / labels / f"{case}{ending}"
            if label.is_file():
                (out / labels).mkdir(exist_ok=True)
                link_or_copy(label, out / labels / f"{new}{ending}", allow_symlink=True)
            elif images == "imagesTr":
                raise UserError(f"{label}: training label not found")
        counts[images] = len(cases)
    return counts


def merged_case_map(entries: dict, prefix: str, source: str) -> dict:
    """A source's case-map entries under the merge: patients and outputs made unique."""
    return {f"{prefix}_{case}": {**entry, "patient": f"{prefix}_{entry.get('patient', case)}",
                                 "output": f"{prefix}/{entry['output']}", "source_dataset": source}
            for case, entry in entries.items()}


def merge_datasets(source_ids: list[int], dataset_id: int, name: str | None = None,
                   channels: list[str] | None = None, overwrite: bool = False) -> Path:
    """Write ``$nnUNet_raw/DatasetNNN_<name>`` holding the cases of every source dataset.

    Parameters
    ----------
    source_ids : two or more converted binary datasets.
    name : default: the source names joined by ``_``.
    channels : channel names to keep, in order (default: the first source's channels);
        every source must have each of them.

    Returns the new dataset folder.
    """
    if len(source_ids) < 2 or len(set(source_ids)) != len(source_ids):
        raise UserError(f"--sources: need two or more different dataset ids, got {source_ids}")
    if int(dataset_id) in map(int, source_ids):
        raise UserError(f"--dataset-id {dataset_id}: must differ from --sources")
    folders = [find_raw_dataset(i) for i in source_ids]
    prefixes = [f.name.split("_", 1)[1] for f in folders]
    if len(set(prefixes)) != len(prefixes):
        raise UserError(f"--sources: two datasets are named alike "
                        f"({', '.join(f.name for f in folders)}); their case ids would collide")
    infos = [load_dataset_json(f / "dataset.json") for f in folders]
    first = infos[0]
    channels = list(channels or first["channel_names"].values())
    if len({c.casefold() for c in channels}) != len(channels):
        raise UserError(f"--channels: {', '.join(channels)} names a channel twice")
    for folder, info in zip(folders, infos):
        where = folder / "dataset.json"
        if lesion_labels(info) != [1] or info.get("labels") != first.get("labels"):
            raise UserError(f"{where}: labels {info.get('labels')} differ from "
                            f"{first.get('labels')} of {folders[0].name} (merge binary datasets)")
        if info["file_ending"] != first["file_ending"]:
            raise UserError(f"{where}: file ending {info['file_ending']!r} differs from "
                            f"{first['file_ending']!r} of {folders[0].name}")
    orders = [channel_order(info, channels, f / "dataset.json") for f, info in zip(folders, infos)]
    name = name or "_".join(prefixes)
    target = check_dataset_id(dataset_id, name, overwrite)
    counts = {"imagesTr": 0, "imagesTs": 0}
    case_map: dict = {}
    with atomic_dir(nnunet_dir("nnUNet_raw") / target, overwrite) as tmp:
        for folder, info, order, prefix in zip(folders, infos, orders, prefixes):
            for images, n in link_cases(folder, info, order, prefix, tmp).items():
                counts[images] += n
            if (folder / CASE_MAP).is_file():
                case_map.update(merged_case_map(load_case_map(folder), prefix, folder.name))
        write_json(tmp / "dataset.json", {
            **{k: first[k] for k in ("labels", "file_ending", "lesion_labels") if k in first},
            "name": name,
            "description": f"Merged by mslesseg-nnunet from {', '.join(f.name for f in folders)}.",
            "channel_names": {str(i): c for i, c in enumerate(channels)},
            "numTraining": counts["imagesTr"], "numTest": counts["imagesTs"],
            "labelling": {"kind": "binary"},
            "merged_from": [f.name for f in folders],
        })
        if case_map:
            write_json(tmp / CASE_MAP, case_map)
        train_cases = source_cases(tmp, first, "imagesTr")
        patients = {c: case_map.get(c, {}).get("patient", c) for c in train_cases}
        drop_preprocessed(target)
        write_splits(nnunet_dir("nnUNet_preprocessed") / target / "splits_final.json",
                     grouped_folds(patients))
    return nnunet_dir("nnUNet_raw") / target
