"""The cross-dataset matrix (seed 002, Table 2): training set x test set, mean Dice and IoU.

Each cell reads the per-case ``metrics.csv`` of ``mslesseg evaluate`` (either
protocol). Per case, IoU = TP / (TP + FP + FN) = Dice / (2 - Dice); a cell is
the mean over the cases whose Dice is defined (a case with both masks empty
is left out), as the paper averages per-scan scores.
"""
from __future__ import annotations

import csv
import html
import math
from pathlib import Path

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.evaluation.report.page import CSP, SORT_SCRIPT, STYLE, table
from mslesseg_nnunet.evaluation.summary import read_csv, write_csv

COLUMNS = ["training_set", "test_set", "n_cases", "dice", "iou"]
INTRO = ("Rows: training set (one dataset, or several merged); columns: test set. Each cell is "
         "the mean over the test cases of Dice = 2TP / (2TP + FP + FN) and IoU = TP / (TP + FP + "
         "FN), each test set scored with its own reference and protocol.")
METRICS = ("dice", "iou")
_TITLES = {"dice": "Dice", "iou": "IoU"}


def cell(training_set: str, test_set: str, metrics_csv: Path) -> dict:
    """One matrix cell from a per-case metrics CSV."""
    try:
        rows = read_csv(metrics_csv)
    except OSError as exc:
        raise UserError(f"{metrics_csv}: cannot read ({exc.strerror})") from None
    if rows and "dice" not in rows[0]:
        raise UserError(f"{metrics_csv}: no dice column (not written by mslesseg evaluate?)")
    dice = [r["dice"] for r in rows if not math.isnan(r["dice"])]
    return {"training_set": training_set, "test_set": test_set, "n_cases": len(dice),
            "dice": _mean(dice), "iou": _mean([d / (2 - d) for d in dice])}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def wide(cells: list[dict], metric: str) -> tuple[list[str], list[list]]:
    """Header and rows of ``metric``: one row per training set, one column per test set."""
    rows = list(dict.fromkeys(c["training_set"] for c in cells))
    cols = list(dict.fromkeys(c["test_set"] for c in cells))
    value = {(c["training_set"], c["test_set"]): c[metric] for c in cells}
    return (["trained on \\ tested on", *cols],
            [[r, *(value.get((r, c), float("nan")) for c in cols)] for r in rows])


def format_matrix(cells: list[dict]) -> str:
    """Both matrices as aligned text."""
    out = []
    for metric in METRICS:
        header, rows = wide(cells, metric)
        text = [[str(h) for h in header]] + [
            [r[0], *("-" if math.isnan(v) else f"{v:.3f}" for v in r[1:])] for r in rows]
        widths = [max(len(line[i]) for line in text) for i in range(len(header))]
        out.append(f"{_TITLES[metric]}:")
        out += ["  " + "  ".join(s.ljust(w) if i == 0 else s.rjust(w)
                                 for i, (s, w) in enumerate(zip(line, widths))) for line in text]
    return "\n".join(out)


def render_matrix_page(cells: list[dict]) -> str:
    """A self-contained HTML page: the Dice and IoU matrices and the long table."""
    parts = [f"<h2>{_TITLES[m]}</h2>{table(*wide(cells, m))}" for m in METRICS]
    long = table(COLUMNS, [[c[k] for k in COLUMNS] for c in cells], "sortable")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>Cross-dataset matrix</title><style>{STYLE}</style></head><body>"
            f"<h1>Cross-dataset matrix</h1><p>{html.escape(INTRO)}</p>"
            f"{''.join(parts)}<h2>All cells</h2>{long}"
            f"<script>{SORT_SCRIPT}</script></body></html>\n")


def write_matrix(out: Path, cells: list[dict], overwrite: bool = False) -> None:
    """``out/matrix.csv`` (long form, like seed 002's Table 2) and ``out/index.html``."""
    with atomic_dir(Path(out), overwrite) as tmp:
        write_csv(tmp / "matrix.csv", cells, COLUMNS)
        (tmp / "index.html").write_text(render_matrix_page(cells), encoding="utf-8")


def read_matrix(path: Path) -> list[dict]:
    """Cells of a ``matrix.csv``."""
    with open(path, newline="") as fh:
        return [{**row, "n_cases": int(row["n_cases"]),
                 **{m: float(row[m]) if row[m] else float("nan") for m in METRICS}}
                for row in csv.DictReader(fh)]
