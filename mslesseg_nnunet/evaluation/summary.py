"""Per-case metric tables (CSV) and their summary statistics (JSON)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import atomic_file


def format_value(value) -> str:
    """CSV cell text: empty for NaN/None, integers as integers, floats in full precision."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Write ``rows`` (dicts) with the given column order, atomically."""
    with atomic_file(Path(path)) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([format_value(row.get(col)) for col in columns])


def read_csv(path: Path) -> list[dict]:
    """Read a metrics CSV back; numeric cells become floats, empty cells NaN."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{key: _parse(key, value) for key, value in row.items()} for row in rows]


def _parse(key: str, value: str):
    if key == "case":
        return value
    return float(value) if value != "" else float("nan")


def describe(values) -> dict:
    """mean, std (sample, ddof=1), median, count, and the 25th/75th percentiles
    (numpy's linear interpolation) of the defined (non-NaN) values."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return {"mean": None, "std": None, "median": None, "count": 0, "q25": None, "q75": None}
    return {"mean": float(arr.mean()),
            "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
            "median": float(np.median(arr)),
            "count": int(arr.size),
            "q25": float(np.percentile(arr, 25)),
            "q75": float(np.percentile(arr, 75))}


def summarize(rows: list[dict], metrics: list[str]) -> dict:
    """Statistics of each metric over the cases (NaN cells are left out)."""
    return {metric: describe(row[metric] for row in rows) for metric in metrics}
