"""Quantile-normalise an nnU-Net raw dataset in place (``mslesseg normalise dataset``,
``mslesseg convert --quantile-normalise``).

The reference of each chosen channel is computed from ``imagesTr`` and stored
in ``dataset.json`` (``quantile_normalisation``) before any image changes;
then every image of those channels in ``imagesTr`` and ``imagesTs`` is
rewritten (float32, atomically). A channel that already has a stored
reference keeps it, and normalising an image twice with the same reference
gives the same image (ranks do not change), so an interrupted run is finished
by running it again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mslesseg_nnunet.dataset_conversion.parallel import check_workers, map_with_progress
from mslesseg_nnunet.atomic import write_json
from mslesseg_nnunet.dataset_json import load_dataset_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.quantile_normalisation import (DATASET_KEY, N_QUANTILES, case_quantiles,
                                                    normalise_case_files, stored_references)


def channel_indices(info: dict, channels: Sequence[str] | None, where: Path) -> list[int]:
    """Indices of the named channels (None: all); raise UserError for unknown names."""
    names = {v: int(k) for k, v in info["channel_names"].items()}
    if channels is None:
        return sorted(names.values())
    unknown = [c for c in channels if c not in names]
    if unknown or not channels:
        raise UserError(f"quantile normalisation: {', '.join(unknown) or 'no channel'} is not a "
                        f"channel of {where} ({', '.join(names)})")
    return sorted({names[c] for c in channels})


def case_files(folder: Path, info: dict) -> dict[str, list[Path]]:
    """Case id -> its channel files in ``folder`` (imagesTr/imagesTs), in channel order."""
    ending, n = info["file_ending"], len(info["channel_names"])
    cases = sorted(p.name[:-len(ending) - 5] for p in folder.glob(f"*_0000{ending}"))
    return {c: [folder / f"{c}_{i:04d}{ending}" for i in range(n)] for c in cases}


def compute_references(training: dict[str, list[Path]], indices: list[int], template: str | None,
                       workers: int) -> dict[int, np.ndarray]:
    """Reference per channel: the mean of the training cases' quantile functions, or the
    ``template`` case's."""
    if template is not None:
        if template not in training:
            raise UserError(f"--template: {template!r} is not a training case")
        training = {template: training[template]}
    items = [(paths, indices, N_QUANTILES) for paths in training.values()]
    functions = map_with_progress(case_quantiles, items, workers, "quantiles")
    return {i: np.mean([f[k] for f in functions], axis=0) for k, i in enumerate(indices)}


def normalise_dataset(folder: Path, channels: Sequence[str] | None = None,
                      template: str | None = None, workers: int | None = None) -> dict:
    """Quantile-normalise ``channels`` (names; None: all) of the raw dataset ``folder``;
    return its ``dataset.json``."""
    folder = Path(folder)
    workers = check_workers(workers)
    info = load_dataset_json(folder / "dataset.json")
    indices = channel_indices(info, channels, folder)
    training = case_files(folder / "imagesTr", info)
    if not training:
        raise UserError(f"{folder / 'imagesTr'}: no training images")
    entry = info.get(DATASET_KEY, {"reference": None, "channels": {}})
    reference = f"template {template}" if template else f"mean of {len(training)} training cases"
    new = [i for i in indices if str(i) not in entry["channels"]]
    if new and entry["channels"] and entry["reference"] != reference:
        raise UserError(f"{folder}: already normalised with the reference '{entry['reference']}' "
                        f"(convert it again to change the reference)")
    if new:
        computed = compute_references(training, new, template, workers)
        entry = {"method": "quantile (Badea & Popa 2024; Bolstad et al. 2003)",
                 "brain": "nonzero voxels of any channel, holes filled (nnU-Net's mask)",
                 "reference": reference,
                 "channels": {**entry["channels"], **{
                     str(i): {"name": info["channel_names"][str(i)], "quantiles": q.tolist()}
                     for i, q in computed.items()}}}
        info = {**info, DATASET_KEY: entry}
        write_json(folder / "dataset.json", info)
    references = stored_references(info)
    items = [(paths, paths, references) for sub in ("imagesTr", "imagesTs")
             for paths in case_files(folder / sub, info).values()]
    map_with_progress(normalise_case_files, items, workers, "normalise")
    return info

