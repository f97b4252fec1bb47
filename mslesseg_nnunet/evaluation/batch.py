"""Score folders of predictions against references, case by case, in parallel."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mslesseg_nnunet.evaluation import msseg2_metrics, mslesseg_metrics
from mslesseg_nnunet.evaluation.conventions import conventions
from mslesseg_nnunet.evaluation.masks import check_same_grid, read_mask
from mslesseg_nnunet.evaluation.pairing import pair_cases
from mslesseg_nnunet.evaluation.summary import summarize
from mslesseg_nnunet.nifti import read_header
from mslesseg_nnunet.parallel import parallel_map

PROTOCOLS = {"mslesseg": mslesseg_metrics, "msseg2": msseg2_metrics}


@dataclass(frozen=True)
class CaseTask:
    """One case to score; ``pred`` None means an empty prediction."""

    case: str
    pred: Path | None
    ref: Path
    protocol: str
    options: dict = field(default_factory=dict)


def score_task(task: CaseTask) -> dict:
    """Read one pair (checking values and geometry) and score it."""
    ref, ref_header = read_mask(task.ref)
    if task.pred is None:
        pred = np.zeros_like(ref)
    else:
        pred, pred_header = read_mask(task.pred)
        check_same_grid(task.pred, pred_header, task.ref, ref_header)
    spacing = ref_header.get_zooms()[:3]
    scores = PROTOCOLS[task.protocol].score_case(pred, ref, spacing, **task.options)
    return {"case": task.case, **scores}


def check_geometry(tasks: list[CaseTask]) -> None:
    """Compare every pair's grids from the headers alone, before any scoring."""
    for task in tasks:
        if task.pred is not None:
            check_same_grid(task.pred, read_header(task.pred), task.ref, read_header(task.ref))


def columns(protocol: str, options: dict | None = None) -> list[str]:
    """CSV columns of a protocol scored with ``options``, ``case`` first."""
    return ["case", *PROTOCOLS[protocol].columns((options or {}).get("size_bins"))]


def evaluate_pairs(pairs: list[tuple[str, Path | None, Path]], protocol: str,
                   options: dict | None = None, workers: int = 1,
                   progress: bool = True) -> list[dict]:
    """Score (case, prediction or None, reference) pairs; one row per case, in order."""
    tasks = [CaseTask(case, pred, ref, protocol, dict(options or {})) for case, pred, ref in pairs]
    check_geometry(tasks)
    return parallel_map(score_task, tasks, workers, f"evaluate ({protocol})", progress)


def evaluate_folders(pred_root: Path, gt_root: Path, protocol: str, options: dict | None = None,
                     workers: int = 1, missing_as_empty: bool = False,
                     progress: bool = True) -> list[dict]:
    """Score every reference case of ``gt_root`` against ``pred_root`` (see :mod:`pairing`)."""
    pairs = pair_cases(pred_root, gt_root, missing_as_empty)
    return evaluate_pairs(pairs, protocol, options, workers, progress)


def summary_document(rows: list[dict], protocol: str, options: dict) -> dict:
    """The summary JSON: per-metric statistics, and ``mean_dice`` for MSLesSeg."""
    metrics = columns(protocol, options)[1:]
    doc = {"protocol": protocol, "n_cases": len(rows), "parameters": dict(options),
           "conventions": conventions(protocol, options)}
    stats = summarize(rows, metrics)
    if protocol == "mslesseg":
        doc["mean_dice"] = stats["dice"]["mean"]
    doc["metrics"] = stats
    return doc
