"""The registry of nnU-Net trainers: ours (the trainers folder) and every one nnU-Net can find.

Names come from the sources with :mod:`ast` (every class, the ``XShort``
twins included, is written out by name): importing the trainers (torch,
nnU-Net) takes 20-30 s on a slow disk, too long for checking an experiment
file. :func:`trainer_classes` imports our modules for their classes and
descriptions (``mslesseg trainers``).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
from functools import lru_cache
from pathlib import Path

from mslesseg_nnunet.nnunet_env import trainers_dir

PREFIX = "nnUNetTrainer"


def _declared_classes(folder: Path) -> list[str]:
    """Names of the ``nnUNetTrainer*`` classes declared in the sources under ``folder``."""
    names = []
    for path in sorted(folder.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        names += [node.name for node in ast.walk(tree)
                  if isinstance(node, ast.ClassDef) and node.name.startswith(PREFIX)]
    return names


@lru_cache(maxsize=1)
def our_trainer_names() -> tuple[str, ...]:
    """Our trainer class names, sorted (``mslesseg trainers`` lists the same)."""
    return tuple(sorted(_declared_classes(trainers_dir())))


@lru_cache(maxsize=1)
def known_trainer_names() -> frozenset[str]:
    """Trainer class names ``nnUNetv2_train -tr`` can find: nnU-Net's, ours, ``nnUNet_extTrainer``'s."""
    import nnunetv2

    folders = [Path(nnunetv2.__path__[0]) / "training" / "nnUNetTrainer"]
    extra = os.environ.get("nnUNet_extTrainer", "")
    folders += [Path(p) for p in extra.split(os.pathsep) if p and Path(p).is_dir()]
    return frozenset(our_trainer_names()).union(*map(_declared_classes, folders))


def trainer_exists(name: str) -> bool:
    """Whether ``nnUNetv2_train -tr name`` would find a trainer class of that name."""
    return name in known_trainer_names()


def trainer_classes() -> dict[str, type]:
    """{name: class} of every nnUNetTrainer subclass defined in a module of the trainers folder."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    found = {}
    for info in pkgutil.iter_modules([str(trainers_dir())]):
        module = importlib.import_module(f"mslesseg_nnunet.trainers.{info.name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, nnUNetTrainer) \
                    and obj.__module__ == module.__name__ and not name.startswith("_"):
                found[name] = obj
    return dict(sorted(found.items()))


def describe(trainer: type) -> str:
    """First line of the class docstring."""
    doc = inspect.getdoc(trainer) or ""
    return doc.splitlines()[0] if doc else ""
