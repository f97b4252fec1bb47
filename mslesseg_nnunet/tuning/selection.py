"""Member selection (M3S): the subset of models whose ensemble scores best on CV cases.

Every subset up to ``exhaustive_up_to`` models is tried (all settings of the
grid each); beyond, greedy forward selection adds, one at a time, the model
whose addition scores best, and stops when no addition beats the current
subset. A subset is scored by its best setting; with a ranked objective the
rows compared (subset x setting) are ranked together.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.tuning.search import Objective

Subset = tuple[int, ...]
# subset -> criteria table (settings, cases, criteria), None when the rule cannot use the subset
EvaluateFn = Callable[[Subset], Optional[np.ndarray]]


@dataclass
class Selection:
    """Every subset tried with its table, and the winner: subset, setting index, objective."""

    method: str
    tried: dict[Subset, np.ndarray] = field(default_factory=dict)
    subset: Subset = ()
    setting: int = 0
    score: float = float("nan")


def best_row(objective: Objective, candidates: dict[Subset, np.ndarray]) -> tuple[Subset, int, float]:
    """The best (subset, setting) row among ``candidates`` (first subset on ties)."""
    subsets = list(candidates)
    stacked = np.concatenate([candidates[s] for s in subsets])
    row, score = objective.best(stacked)
    counts = np.cumsum([len(candidates[s]) for s in subsets])
    k = int(np.searchsorted(counts, row, side="right"))
    return subsets[k], row - (int(counts[k - 1]) if k else 0), score


def select_members(n_models: int, evaluate: EvaluateFn, objective: Objective,
                   exhaustive_up_to: int = 6) -> Selection:
    """Exhaustive search over the non-empty subsets of ``range(n_models)`` when ``n_models``
    is at most ``exhaustive_up_to``, else greedy forward selection."""
    selection = Selection("exhaustive" if n_models <= exhaustive_up_to else "greedy")

    def tried(subsets) -> dict[Subset, np.ndarray]:
        found = {}
        for subset in tqdm(subsets, desc="subsets", unit="subset", leave=False):
            table = selection.tried[subset] if subset in selection.tried else evaluate(subset)
            if table is not None:
                selection.tried[subset] = found[subset] = table
        return found

    models = range(n_models)
    if selection.method == "exhaustive":
        pool = tried([s for k in range(1, n_models + 1) for s in itertools.combinations(models, k)])
    else:  # start from the smallest subsets the rule can use (pairs for MSL+DBL)
        pool = next((p for k in range(1, n_models + 1)
                     if (p := tried(list(itertools.combinations(models, k))))), {})
    if not pool:
        raise UserError("--select-members: no subset of the models can feed the rule")
    selection.subset, selection.setting, selection.score = best_row(objective, pool)
    while selection.method == "greedy" and len(selection.subset) < n_models:
        current = selection.subset
        grown = tried([tuple(sorted(current + (m,))) for m in models if m not in current])
        selection.subset, selection.setting, selection.score = best_row(
            objective, {current: selection.tried[current], **grown})
        if selection.subset == current:
            break
    return selection
