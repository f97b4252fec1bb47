"""The nnU-Net trainer classes defined in our trainers folder, with one-line descriptions."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from mslesseg_nnunet.nnunet_env import trainers_dir


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
