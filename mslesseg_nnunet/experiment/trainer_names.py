"""Which nnU-Net trainer class names exist: nnU-Net's own, ours, and ``nnUNet_extTrainer``'s.

Class names are read from the source files with :mod:`ast`: importing the
trainers (torch, nnU-Net) takes 20-30 s on a slow disk, too long for checking a
file. By the agreed naming, every trainer ``X`` of ours has a generated
short-schedule twin ``XShort``, which the sources do not spell out.
"""
from __future__ import annotations

import ast
import os
from functools import lru_cache
from pathlib import Path


def _classes_in_folder(folder: Path) -> frozenset[str]:
    names = set()
    for path in folder.rglob("*.py"):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        names.update(node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef))
    return frozenset(names)


def _trainer_folders() -> list[Path]:
    import nnunetv2

    from mslesseg_nnunet.nnunet_env import trainers_dir

    folders = [Path(nnunetv2.__path__[0]) / "training" / "nnUNetTrainer", trainers_dir()]
    extra = os.environ.get("nnUNet_extTrainer", "")
    folders += [Path(p) for p in extra.split(os.pathsep) if p and Path(p).is_dir()]
    return folders


@lru_cache(maxsize=1)
def declared_trainer_names() -> frozenset[str]:
    """Class names starting with ``nnUNetTrainer`` declared in the trainer folders' sources."""
    names: set[str] = set()
    for folder in _trainer_folders():
        names.update(n for n in _classes_in_folder(folder) if n.startswith("nnUNetTrainer"))
    return frozenset(names)


def trainer_exists(name: str) -> bool:
    """Whether ``nnUNetv2_train -tr name`` would find a trainer class of that name."""
    declared = declared_trainer_names()
    return name in declared or (name.endswith("Short") and name.removesuffix("Short") in declared)
