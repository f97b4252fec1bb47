"""``mslesseg tune`` on cross-validation predictions: rule, weights, grid and member subset.

The models' CV probabilities are loaded once per case. Without weighting or
selection each case is fused right away (memory: one map per case); with
``--weights cv-dice`` or ``--select-members`` every model's (cropped) map is
kept, so that any subset and weighting can be fused from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.ensembles.folder import UNWEIGHTED_RULES
from mslesseg_nnunet.ensembles.members import model_key
from mslesseg_nnunet.ensembles.validation import (CaseModels, ValidationModel, cv_dice, load_case,
                                                  open_validation, tune_rule)
from mslesseg_nnunet.postprocessing.params import CV_DICE, PostprocessingParams
from mslesseg_nnunet.postprocessing.rules import check_groups, group_of
from mslesseg_nnunet.tuning.search import (Objective, grid_settings, mean_scores,
                                                   score_settings, write_table)
from mslesseg_nnunet.tuning.selection import select_members


@dataclass
class TuneResult:
    """The chosen parameters, their objective, what goes into tuned.json besides, a note."""

    params: PostprocessingParams
    score: float
    extra: dict
    note: str = ""


def member_weights(loaded: Sequence[CaseModels], n_models: int, weights: str | None) -> list[float]:
    """Equal weights, or each model's mean CV Dice (MSUniCaTeam)."""
    if weights != CV_DICE:
        return [1.0] * n_models
    references = [c.reference for c in loaded]
    return [cv_dice([c.probabilities[i] for c in loaded], references) for i in range(n_models)]


def tune(model_dirs: Sequence[Path], folds: Sequence[int] | None, base: PostprocessingParams,
         rule: str | None, grid_for: Callable[[str], dict], objective: Objective,
         min_threshold: float, table_path: Path, weights: str | None = None,
         select: bool = False, exhaustive_up_to: int = 6) -> TuneResult:
    """Score every grid setting (of every member subset, with ``select``) and pick the best;
    write the CSV table. ``rule`` None: madseg for MSL+DBL models, else mean."""
    models, case_ids = open_validation(model_dirs, folds)
    rule = rule or tune_rule(models)
    settings = grid_settings(base.replace(rule=rule), grid_for(rule))
    kinds, everyone = [m.kind for m in models], tuple(range(len(models)))
    check_groups([group_of(k, rule) for k in kinds], rule)
    if weights == CV_DICE and rule in UNWEIGHTED_RULES:
        raise UserError(f"--weights: the {rule} rule does not weight its members")
    keep = select or weights == CV_DICE
    loaded, cases = [], []
    for case in tqdm(case_ids, desc="load", unit="case"):
        case_models = load_case(models, case, min_threshold)
        if keep:
            loaded.append(case_models)
        else:
            cases.append(case_models.fuse(kinds, rule, everyone, [1.0] * len(models)))
    w = member_weights(loaded, len(models), weights)
    extra = {"n_cases": len(case_ids), "n_settings": len(settings), "table": str(table_path),
             "models": [m.describe() for m in models]}
    if select:
        def evaluate(subset):
            try:
                check_groups([group_of(kinds[i], rule) for i in subset], rule)
            except UserError:
                return None
            return score_settings([c.fuse(kinds, rule, subset, w) for c in loaded], settings,
                                  objective, progress=False)

        selection = select_members(len(models), evaluate, objective, exhaustive_up_to)
        subsets = list(selection.tried)
        table = np.concatenate([selection.tried[s] for s in subsets])
        labels = [" + ".join(model_key(models[i].describe()) for i in s) for s in subsets]
        write_table(table_path, settings * len(subsets), table, case_ids, objective,
                    [label for label in labels for _ in settings])
        chosen, best, score = selection.subset, selection.setting, selection.score
        criteria = mean_scores(selection.tried[chosen])[best]
        extra["selection"] = {"method": selection.method, "n_subsets": len(subsets)}
    else:
        if keep:
            cases = [c.fuse(kinds, rule, everyone, w) for c in loaded]
        table = score_settings(cases, settings, objective)
        best, score = objective.best(table)
        write_table(table_path, settings, table, case_ids, objective)
        chosen, criteria = everyone, mean_scores(table)[best]
    if len(objective.criteria) > 1:
        extra["criteria"] = {c: _number(v) for c, v in zip(objective.criteria, criteria)}
    if keep:
        extra["weights"] = weights or "equal"
        extra["members"] = [member_entry(models[i], w[i], weights) for i in chosen]
    note = f" and members {[model_key(models[i].describe()) for i in chosen]}" if select else ""
    return TuneResult(settings[best], score, extra, note)


def member_entry(model: ValidationModel, weight: float, weights: str | None) -> dict:
    """A chosen member in tuned.json: its identity, folder and weight."""
    entry = {"model": model_key(model.describe()), "folder": str(model.folder), "weight": weight}
    return {**entry, "cv_dice": weight} if weights == CV_DICE else entry


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
