"""Grid search of fusion/postprocessing parameters on cross-validation cases.

Every case's probabilities are loaded once (``TuneCase``) and every setting
is scored on them; settings that share a fused map and threshold share its
connected components through ``rules.Segmenter``.
"""
from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from mslesseg_nnunet.atomic import atomic_file
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.postprocessing.params import PostprocessingParams
from mslesseg_nnunet.postprocessing.rules import Segmenter

GRID_FIELDS = ("threshold", "min_size", "mix", "prob_threshold", "volume_threshold")
MADSEG_ONLY = ("mix", "prob_threshold", "volume_threshold")
ScoreFn = Callable[[np.ndarray, np.ndarray, Sequence[float]], float]


@dataclass
class TuneCase:
    """One cross-validation case: group probabilities and reference, cropped alike."""

    case: str
    groups: dict[str, np.ndarray]
    reference: np.ndarray
    spacing: tuple[float, ...]


def dice(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] = ()) -> float:
    """Dice of two masks; NaN when both are empty."""
    total = int(pred.sum()) + int(ref.sum())
    return 2.0 * int(np.logical_and(pred, ref).sum()) / total if total else math.nan


def lesion_f1(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """MSSEG-2 lesion F1 (Anima rules); NaN for an empty reference."""
    from mslesseg_nnunet.evaluation.msseg2_metrics import score_case

    return float(score_case(pred, ref, spacing)["f1"])


SCORES: dict[str, tuple[str, ScoreFn]] = {"mslesseg": ("dice", dice), "msseg2": ("lesion_f1", lesion_f1)}


def grid_settings(base: PostprocessingParams, grid: dict[str, Sequence[float]]) -> list[PostprocessingParams]:
    """Every combination of the grid values (MadSeg-only fields only for the madseg rule)."""
    fields = [f for f in GRID_FIELDS if f in grid and (base.rule == "madseg" or f not in MADSEG_ONLY)]
    for name in fields:
        if not grid[name]:
            raise UserError(f"--{name.replace('_', '-')}s: needs at least one value")
    return [base.replace(**dict(zip(fields, values)))
            for values in itertools.product(*(grid[f] for f in fields))]


def score_settings(cases: Sequence[TuneCase], settings: Sequence[PostprocessingParams],
                   score: ScoreFn) -> np.ndarray:
    """Scores, shape (settings, cases); each case is segmented for every setting in turn."""
    table = np.full((len(settings), len(cases)), np.nan)
    for j, case in enumerate(tqdm(cases, desc="tune", unit="case")):
        segmenter = Segmenter(case.groups, case.spacing)
        for i, params in enumerate(settings):
            table[i, j] = score(segmenter.mask(params), case.reference, case.spacing)
    return table


def mean_scores(table: np.ndarray) -> np.ndarray:
    """Mean over cases per setting, ignoring undefined (NaN) cases; NaN if none is defined."""
    defined = ~np.isnan(table)
    counts = defined.sum(axis=1)
    sums = np.where(defined, table, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def best_setting(settings: Sequence[PostprocessingParams], table: np.ndarray) -> tuple[int, float]:
    """Index and mean score of the best setting (first one on ties)."""
    means = mean_scores(table)
    if np.all(np.isnan(means)):
        raise UserError("tune: every case has an undefined score (empty references?)")
    best = int(np.nanargmax(means))
    return best, float(means[best])


def write_table(path: Path, settings: Sequence[PostprocessingParams], table: np.ndarray,
                case_ids: Sequence[str], metric: str) -> None:
    """CSV: one row per setting with its parameters, mean score and per-case scores."""
    fields = list(settings[0].to_dict())
    with atomic_file(Path(path)) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*fields, f"mean_{metric}", *case_ids])
        for params, row, mean in zip(settings, table, mean_scores(table)):
            writer.writerow([*params.to_dict().values(), _fmt(mean), *map(_fmt, row)])


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"
