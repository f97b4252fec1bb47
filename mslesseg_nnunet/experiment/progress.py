"""Text views of an experiment: the step graph (dry run) and the status table."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from mslesseg_nnunet.experiment.graph import Graph, evaluation_summaries
from mslesseg_nnunet.experiment.schema import Experiment


def format_graph(exp: Experiment, graph: Graph, todo_ids: set[str]) -> str:
    """Every step with its state (to run / finished), dependencies and command line."""
    lines = [f"# {exp.name}: {len(graph)} steps, {len(todo_ids)} to run (workdir {exp.workdir})"]
    for step in graph:
        flag = "to run" if step.id in todo_ids else "finished"
        after = ", ".join(step.deps) if step.deps else "-"
        lines.append(f"step {step.id} [{flag}] after: {after}")
        lines.append(f"    $ {shlex.join(step.argv)}")
    return "\n".join(lines)


def format_status(exp: Experiment, states: dict[str, tuple[str, str]]) -> str:
    """One line per step (status, id, detail), then counts per status."""
    width = max(map(len, states), default=0)
    lines = [f"{status:<8} {step_id:<{width}}  {detail}".rstrip()
             for step_id, (status, detail) in states.items()]
    counts: dict[str, int] = {}
    for status, _ in states.values():
        counts[status] = counts.get(status, 0) + 1
    lines.append(f"{exp.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def mean_dice_table(exp: Experiment) -> dict[str, float]:
    """Evaluated prediction -> mean per-case Dice, for the summaries that exist."""
    table = {}
    for name, path in evaluation_summaries(exp).items():
        value = read_mean_dice(path)
        if value is not None:
            table[name] = value
    return table


def read_mean_dice(summary: Path) -> float | None:
    """The mean Dice of an evaluation ``summary.json`` (None if absent or unreadable)."""
    try:
        data = json.loads(Path(summary).read_text())
    except (OSError, ValueError):
        return None
    try:
        value = data["metrics"]["dice"]["mean"]  # both protocols (MSSEG-2: Anima's Dice)
    except (KeyError, TypeError):
        return None
    return float(value) if value is not None else None


def matrix_text(exp: Experiment) -> str | None:
    """A cross-dataset experiment's Dice and IoU matrices, once its matrix step wrote them."""
    from mslesseg_nnunet.evaluation.matrix import format_matrix, read_matrix

    path = exp.workdir / "matrix" / "matrix.csv"
    if not exp.tests or not path.is_file():
        return None
    return f"{format_matrix(read_matrix(path))}\nmatrix: {path}, {path.with_name('index.html')}"
