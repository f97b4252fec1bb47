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
from mslesseg_nnunet.evaluation.voxel_metrics import dice
from mslesseg_nnunet.postprocessing.params import PostprocessingParams
from mslesseg_nnunet.postprocessing.rules import Segmenter

# grid field -> its `mslesseg tune` option
GRID_OPTIONS = {"threshold": "--thresholds", "min_size": "--min-sizes", "mix": "--mixes",
                "prob_threshold": "--prob-thresholds", "volume_threshold": "--volume-thresholds"}
GRID_FIELDS = tuple(GRID_OPTIONS)
MADSEG_ONLY = ("mix", "prob_threshold", "volume_threshold")
CriteriaFn = Callable[[np.ndarray, np.ndarray, Sequence[float]], tuple[float, ...]]


@dataclass
class TuneCase:
    """One cross-validation case: group probabilities and reference, cropped alike."""

    case: str
    groups: dict[str, np.ndarray]
    reference: np.ndarray
    spacing: tuple[float, ...]


def msseg2_criteria(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[float, ...]:
    """MSSEG-2 criteria (Anima rules): lesion F1 and Dice (NaN for an empty reference),
    nFP and VFP in mm3 (NaN for a reference with lesions)."""
    from mslesseg_nnunet.evaluation.msseg2_metrics import score_case

    row = score_case(pred, ref, spacing)
    return tuple(float(row[k]) for k in ("f1", "dice", "fp_lesions", "fp_volume_mm3"))


def mean_scores(table: np.ndarray) -> np.ndarray:
    """Mean over cases (axis 1), ignoring undefined (NaN) cases; NaN if none is defined."""
    defined = ~np.isnan(table)
    counts = defined.sum(axis=1)
    sums = np.where(defined, table, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def mean_ranks(means: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Challenge-style ranking: each criterion (column) ranked over the rows (1 = best, ties
    share their mean rank), then the mean rank per row; criteria no case defines are left out."""
    from scipy.stats import rankdata

    ranks = [rankdata(-means[:, c] if higher else means[:, c], method="average")
             for c, higher in enumerate(higher_is_better) if not np.isnan(means[:, c]).any()]
    if not ranks:
        raise UserError("tune: every case has an undefined score (empty references?)")
    return np.mean(ranks, axis=0)


@dataclass(frozen=True)
class Objective:
    """What tuning optimises: per-case criteria, averaged over the cases that define them;
    the first criterion's mean is maximised, or (``ranked``) the mean rank minimised."""

    metric: str
    criteria: tuple[str, ...]
    higher_is_better: tuple[bool, ...]
    evaluate: CriteriaFn
    ranked: bool = False

    def scores(self, table: np.ndarray) -> np.ndarray:
        """Objective per row of a (rows, cases, criteria) table."""
        means = mean_scores(table)
        return mean_ranks(means, self.higher_is_better) if self.ranked else means[:, 0]

    def best(self, table: np.ndarray) -> tuple[int, float]:
        """Index and objective of the best row (first one on ties)."""
        scores = self.scores(table)
        if np.all(np.isnan(scores)):
            raise UserError("tune: every case has an undefined score (empty references?)")
        best = int(np.nanargmin(scores) if self.ranked else np.nanargmax(scores))
        return best, float(scores[best])


DICE = Objective("dice", ("dice",), (True,), lambda p, r, s: (dice(p, r),))
LESION_F1 = Objective("lesion_f1", ("lesion_f1",), (True,), lambda p, r, s: msseg2_criteria(p, r, s)[:1])
MSSEG2_RANK = Objective("mean_rank", ("lesion_f1", "dice", "nfp", "vfp"), (True, True, False, False),
                        msseg2_criteria, ranked=True)
# protocol -> {--objective: objective}; the first is the protocol's default.
OBJECTIVES = {"mslesseg": {"dice": DICE}, "msseg2": {"rank": MSSEG2_RANK, "f1": LESION_F1}}


def grid_settings(base: PostprocessingParams, grid: dict[str, Sequence[float]]) -> list[PostprocessingParams]:
    """Every combination of the grid values (MadSeg-only fields only for the madseg rule)."""
    fields = [f for f in GRID_FIELDS if f in grid and (base.rule == "madseg" or f not in MADSEG_ONLY)]
    for name in fields:
        if not grid[name]:
            raise UserError(f"{GRID_OPTIONS[name]}: needs at least one value")
    return [base.replace(**dict(zip(fields, values)))
            for values in itertools.product(*(grid[f] for f in fields))]


def score_settings(cases: Sequence[TuneCase], settings: Sequence[PostprocessingParams],
                   objective: Objective, progress: bool = True) -> np.ndarray:
    """Criteria, shape (settings, cases, criteria); each case is segmented for every setting."""
    table = np.full((len(settings), len(cases), len(objective.criteria)), np.nan)
    for j, case in enumerate(tqdm(cases, desc="tune", unit="case", disable=not progress)):
        segmenter = Segmenter(case.groups, case.spacing)
        for i, params in enumerate(settings):
            table[i, j] = objective.evaluate(segmenter.mask(params), case.reference, case.spacing)
    return table


def write_table(path: Path, settings: Sequence[PostprocessingParams], table: np.ndarray,
                case_ids: Sequence[str], objective: Objective,
                members: Sequence[str] | None = None) -> None:
    """CSV: one row per setting (and member subset, given ``members``) with its parameters,
    mean criteria (and mean rank) and per-case values (``criterion:case`` for several)."""
    fields = list(settings[0].to_dict())
    names = objective.criteria
    means = mean_scores(table)
    columns = [f"mean_{c}" for c in names] + (["mean_rank"] if objective.ranked else [])
    per_case = list(case_ids) if len(names) == 1 else [f"{c}:{case}" for c in names for case in case_ids]
    ranks = objective.scores(table)[:, None] if objective.ranked else np.zeros((len(table), 0))
    with atomic_file(Path(path)) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(["members"] if members else []), *fields, *columns, *per_case])
        for i, params in enumerate(settings):
            values = [*means[i], *ranks[i], *table[i].T.ravel()]
            writer.writerow([*([members[i]] if members else []), *params.to_dict().values(),
                             *map(_fmt, values)])


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"
