"""``mslesseg env``: print the nnU-Net environment for ``eval``."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.nnunet_env import export_lines, nnunet_environment


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "env", help="print export lines for nnUNet_raw/preprocessed/results/extTrainer",
        description="Print `export` lines for the nnU-Net folders (kept if already set, else "
                    "under --root) and nnUNet_extTrainer pointing at our trainers. "
                    'Use: eval "$(mslesseg env)"')
    p.add_argument("--root", type=Path, default=None,
                   help="folder for nnU-Net data not already set in the environment "
                        "(default: $MSLESSEG_ROOT or ~/mslesseg_nnunet_data)")
    p.set_defaults(func=run)


def run(args) -> int:
    print(export_lines(nnunet_environment(args.root)))
    return 0
