"""``mslesseg recipe madseg|msseg2|msseg2-cib|demo|crossdataset``: print a ready-made experiment file."""
from __future__ import annotations

from mslesseg_nnunet.experiment.recipes import RECIPES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "recipe", help="print a ready-made experiment file (TOML) for `mslesseg run`",
        description="Print an experiment file: madseg (the MSLesSeg winner: MSL + DBL x 5 "
                    "schemes x 5 folds), msseg2 (MSSEG-2 new lesions), msseg2-cib (the same with "
                    "Calibrated Inter-patch Blending), demo (CPU-sized, "
                    "synthetic data), crossdataset (train on datasets alone and merged, test on "
                    "each: a Dice/IoU matrix). Use: mslesseg recipe madseg > madseg.toml")
    p.add_argument("name", choices=sorted(RECIPES), help="which recipe")
    p.set_defaults(func=run)


def run(args) -> int:
    print(RECIPES[args.name], end="")
    return 0
