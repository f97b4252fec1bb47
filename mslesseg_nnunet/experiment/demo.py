"""``mslesseg demo``: write the demo recipe into a folder and run it with the local executor."""
from __future__ import annotations

import time
from pathlib import Path

from mslesseg_nnunet.atomic import atomic_file
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.experiment.graph import build_graph
from mslesseg_nnunet.experiment.local import run_local
from mslesseg_nnunet.experiment.preflight import check_dataset_ids
from mslesseg_nnunet.experiment.progress import mean_dice_table
from mslesseg_nnunet.experiment.recipes import DEMO
from mslesseg_nnunet.experiment.loading import load_experiment


def write_demo_file(workdir: Path) -> Path:
    """``workdir/demo.toml`` holding the current demo recipe.

    A rerun finds the finished steps of an earlier run in ``workdir`` and skips them;
    edit a copy and use ``mslesseg run`` to try other settings.
    """
    path = Path(workdir).resolve() / "demo.toml"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--workdir: cannot create {path.parent} ({exc.strerror})") from None
    if not path.exists() or path.read_text() != DEMO:
        with atomic_file(path) as tmp:
            tmp.write_text(DEMO)
    return path


def run_demo(workdir: Path) -> int:
    """Run the demo; print members' and ensemble's test Dice, the report, ``mean Dice: X.XXX``."""
    start = time.monotonic()
    exp = load_experiment(write_demo_file(workdir))
    check_dataset_ids(exp)
    code = run_local(exp, build_graph(exp))
    if code != 0:
        return code
    table = mean_dice_table(exp)
    for name, dice in table.items():
        print(f"  test Dice {name:<55} {dice:.3f}")
    print(f"demo finished in {(time.monotonic() - start) / 60:.1f} min")
    print(f"report: {exp.workdir / 'report' / 'index.html'}")
    if "ensemble" not in table:
        raise UserError(f"{exp.workdir / 'evaluation' / 'ensemble'}: no evaluation summary")
    print(f"mean Dice: {table['ensemble']:.3f}")
    return 0
