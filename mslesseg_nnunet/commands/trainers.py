"""``mslesseg trainers``: list our nnU-Net trainers with one-line descriptions."""
from __future__ import annotations

from mslesseg_nnunet.trainer_catalog import describe, trainer_classes


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trainers", help="list our nnU-Net trainers (for nnUNetv2_train -tr NAME)",
        description="List the trainer classes found in the installed trainers folder, one per line "
                    "with a description. Use with: eval \"$(mslesseg env)\"; "
                    "nnUNetv2_train DATASET 3d_fullres FOLD -tr NAME")
    p.add_argument("--names-only", action="store_true", help="print the names only")
    p.set_defaults(func=run)


def run(args) -> int:
    trainers = trainer_classes()
    width = max(map(len, trainers))
    for name, cls in trainers.items():
        print(name if args.names_only else f"{name:<{width}}  {describe(cls)}")
    return 0
