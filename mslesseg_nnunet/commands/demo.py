"""``mslesseg demo``: the demo recipe, run locally on synthetic data, ending with its mean Dice."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="run the whole pipeline on synthetic scans on this machine (CPU)",
        description="Write the demo recipe to WORKDIR/demo.toml and run it locally (a rerun "
                    "skips the finished steps): synthetic data, conversion, MSL/DBL "
                    "relabelling, CPU plans, short trainings, tuning, test predictions, fused "
                    "ensemble, evaluation and an HTML report. Ends with `mean Dice: X.XXX`.")
    p.add_argument("--workdir", type=Path, default=Path("mslesseg_demo"),
                   help="folder for the demo's files (default ./mslesseg_demo)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.experiment.demo import run_demo

    return run_demo(args.workdir)
