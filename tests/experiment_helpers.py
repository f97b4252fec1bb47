"""A tiny experiment for the executor tests: cheap steps with a real dependency shape.

    seed ──> fold0, fold1, fold2 (one job array) ──> merge ──> recipe_check
      └────> side

``seed`` writes numbers; each fold step squares its number (``fold1`` fails
while ``FAIL_fold1`` exists in the work dir); ``merge`` sums the squares;
``recipe_check`` runs the real ``mslesseg recipe demo`` and validates the result
with ``mslesseg run --dry-run``; ``side`` is an independent branch.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

PY = sys.executable


def _py(code: str) -> str:
    return json.dumps([PY, "-c", code])


def write_tiny_experiment(folder: Path, seed_sleep: float = 0.0, resources: str = "",
                          with_recipe: bool = True) -> Path:
    """Write ``folder/tiny.toml``; its work dir is ``folder/work``.

    ``with_recipe=False`` leaves out ``recipe_check`` (two CLI starts, a few seconds).
    """
    fold_steps = "\n".join(f"""
[[steps]]
id = "fold{i}"
array = "folds"
after = ["seed"]
outputs = ["fold{i}.txt"]
command = {_py(f"import os,sys; os.path.exists('FAIL_fold{i}') and sys.exit(3); "
               f"v = int(open('seed.txt').read().split()[{i}]); open('fold{i}.txt', 'w').write(str(v * v))")}
""" for i in range(3))
    text = f"""
[experiment]
name = "tiny"
workdir = "work"
nnunet_root = "nnunet"

[env]
TINY_MARK = "1"

[[steps]]
id = "seed"
outputs = ["seed.txt"]
command = {_py(f"import time; time.sleep({seed_sleep}); open('seed.txt', 'w').write('2 3 4')")}
{fold_steps}
[[steps]]
id = "merge"
after = ["fold0", "fold1", "fold2"]
outputs = ["sum.txt"]
command = {_py("open('sum.txt', 'w').write(str(sum(int(open(f'fold{i}.txt').read()) for i in range(3))))")}

{RECIPE_STEP if with_recipe else ""}
[[steps]]
id = "side"
after = ["seed"]
outputs = ["side.txt"]
command = {_py("import os; open('side.txt', 'w').write(os.environ['TINY_MARK'])")}
{resources}
"""
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


RECIPE_STEP = """
[[steps]]
id = "recipe_check"
after = ["merge"]
outputs = ["demo_recipe.toml", "demo_dry_run.txt"]
command = ["bash", "-c", "mslesseg recipe demo > demo_recipe.toml && mslesseg run demo_recipe.toml --dry-run > demo_dry_run.txt"]
"""
STEP_IDS = ["seed", "fold0", "fold1", "fold2", "merge", "recipe_check", "side"]


def check_tiny_results(work: Path):
    """The tiny experiment's outputs are right: 4 + 9 + 16 = 29, and the recipe validated."""
    assert (work / "sum.txt").read_text() == "29"
    assert (work / "side.txt").read_text() == "1"
    if (work / "steps" / "recipe_check").exists():
            assert "step train.msl.nnUNetTrainerShort__nnUNetPlans.fold0" in \
            (work / "demo_dry_run.txt").read_text()


def marker_times(work: Path) -> dict[str, float]:
    """Step id -> modification time of its exit-code marker (absent steps left out)."""
    times = {}
    for step in STEP_IDS:
        marker = work / "steps" / step / "exit_code"
        if marker.exists():
            times[step] = marker.stat().st_mtime_ns
    return times


def read_state(work: Path) -> dict:
    return json.loads((work / "state.json").read_text())["steps"]
