"""STAPLE consensus of several prediction folders, and each input's Dice against it.

The data descriptor's consensus analysis (its Table 3): for every case, the
masks of all inputs (prediction folders, and the reference when given) are
merged by STAPLE, its probability is thresholded (strictly above), and each
input is scored by its Dice against that consensus. C1 is all teams plus the
reference, C2 the best five plus the reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.evaluation.masks import check_same_grid, read_mask
from mslesseg_nnunet.evaluation.pairing import find_masks
from mslesseg_nnunet.evaluation.summary import describe
from mslesseg_nnunet.evaluation.voxel_metrics import dice
from mslesseg_nnunet.nifti import read_header, write_volume
from mslesseg_nnunet.staple import staple

CSV_COLUMNS = ("case", "input", "dice", "staple_sensitivity", "staple_specificity")
REFERENCE_LABEL = "reference"


@dataclass(frozen=True)
class ConsensusTask:
    """One case: the mask of every input (the first gives the header) and the output file."""

    case: str
    labels: tuple[str, ...]
    paths: tuple[Path, ...]
    out: Path
    threshold: float


def consensus_inputs(pred_dirs: list[Path], gt: Path | None) -> list[tuple[str, Path]]:
    """(CSV label, folder) of every input: ``reference`` first when given, then the
    prediction folders by name (by the path as given if two names clash).

    Raises UserError with fewer than two inputs or a folder given twice.
    """
    preds = [Path(p) for p in pred_dirs]
    folders = ([Path(gt)] if gt else []) + preds
    if len(folders) < 2:
        raise UserError("PRED_DIR: a consensus needs at least two inputs "
                        "(prediction folders, or one and --gt)")
    resolved = [f.resolve() for f in folders]
    for folder, real in zip(folders, resolved):
        if resolved.count(real) > 1:
            raise UserError(f"{folder}: given twice as an input")
    names = [p.name for p in preds]
    if len(set(names)) != len(names) or REFERENCE_LABEL in names:
        names = [str(p) for p in preds]
    return list(zip(([REFERENCE_LABEL] if gt else []) + names, folders))


def consensus_tasks(inputs: list[tuple[str, Path]], out_dir: Path,
                    threshold: float) -> list[ConsensusTask]:
    """One task per case of the first input (the reference, else the first prediction
    folder), whose masks give the grid and header.

    Raises UserError when an input lacks one of these cases or a mask's grid
    differs from the first input's.
    """
    labels = tuple(label for label, _ in inputs)
    found = [find_masks(folder) for _, folder in inputs]
    first = inputs[0][1]
    for (_, folder), masks in zip(inputs[1:], found[1:]):
        missing = [case for case in found[0] if case not in masks]
        if missing:
            shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)"
                                               if len(missing) > 10 else "")
            raise UserError(f"{folder}: no mask for case(s) {shown} of {first}")
    tasks = []
    for case in found[0]:
        paths = tuple(masks[case] for masks in found)
        source = read_header(paths[0])
        for path in paths[1:]:
            check_same_grid(path, read_header(path), paths[0], source)
        tasks.append(ConsensusTask(case, labels, paths, Path(out_dir) / f"{case}.nii.gz",
                                   threshold))
    return tasks


def consensus_case(task: ConsensusTask) -> list[dict]:
    """Write the case's consensus mask (uint8, the source's header); one CSV row per input."""
    read = [read_mask(path) for path in task.paths]
    masks = [mask for mask, _ in read]
    estimate = staple(masks)
    consensus = estimate.mask(task.threshold)
    write_volume(task.out, consensus.astype(np.uint8), read[0][1], dtype=np.uint8)
    return [{"case": task.case, "input": label, "dice": dice(mask, consensus),
             "staple_sensitivity": sens, "staple_specificity": spec}
            for label, mask, sens, spec in zip(task.labels, masks, estimate.sensitivity,
                                               estimate.specificity)]


def consensus_summary(rows: list[dict], inputs: list[tuple[str, Path]], threshold: float) -> dict:
    """Per input: its folder and the statistics of its Dice against the consensus."""
    return {
        "n_cases": len({row["case"] for row in rows}),
        "threshold": threshold,
        "conventions": {
            "consensus": "SimpleITK STAPLEImageFilter (defaults: foreground 1, prior from the "
                         "inputs over the whole image) of every input's mask; consensus = "
                         "probability > threshold; where all inputs agree, their common mask",
            "dice": "2|A&C| / (|A| + |C|) of each input A against the consensus C; NaN when "
                    "both are empty, left out of the statistics",
        },
        "inputs": {label: {"folder": str(folder),
                           "dice": describe(r["dice"] for r in rows if r["input"] == label)}
                   for label, folder in inputs},
    }
