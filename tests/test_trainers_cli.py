"""``mslesseg trainers`` lists exactly the trainer classes nnU-Net can import from our folder."""
from __future__ import annotations

import inspect
import json
import os
import pkgutil
import subprocess
import sys

import pytest

from mslesseg_nnunet.nnunet_env import trainers_dir

EXPECTED = {"nnUNetTrainerDiceFocal", "nnUNetTrainerMSCSA", "nnUNetTrainerMSCSADiceFocal",
            "nnUNetTrainerUMambaBot", "nnUNetTrainerUMambaBotDiceFocal", "nnUNetTrainerUMambaEnc",
            "nnUNetTrainerUMambaEncDiceFocal", "nnUNetTrainerLightMUNet", "nnUNetTrainerGIN"}

# Imports every module of the trainers folder the way nnU-Net does (folder on sys.path, modules
# as top-level names) in a fresh interpreter where mamba_ssm cannot be imported, and prints the
# nnUNetTrainer subclasses each module defines, then how often each file of the folder ran.
SCAN = r"""
import collections, importlib, inspect, json, os, pkgutil, sys
sys.modules["mamba_ssm"] = None
folder = sys.argv[1]
runs = collections.Counter()

def count(event, args):
    if event == "exec" and hasattr(args[0], "co_filename"):
        path = os.path.realpath(args[0].co_filename)
        if os.path.dirname(path) == os.path.realpath(folder):
            runs[os.path.basename(path)] += 1

sys.addaudithook(count)
sys.path.insert(0, folder)
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
for info in pkgutil.iter_modules([folder]):
    module = importlib.import_module(info.name)
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and issubclass(obj, nnUNetTrainer) and obj.__module__ == info.name:
            print(name)
print(json.dumps(runs))
"""


@pytest.fixture(scope="module")
def listed(cli):
    lines = cli("trainers").stdout.splitlines()
    return {line.split()[0]: line.split(None, 1)[1] for line in lines}


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    from conftest import mslesseg_executable

    cwd = tmp_path_factory.mktemp("trainers_cli")

    def run(*args):
        return subprocess.run([mslesseg_executable(), *args], cwd=cwd, capture_output=True,
                              text=True, check=True, env=dict(os.environ))

    return run


def test_lists_every_importable_trainer(listed):
    scan = subprocess.run([sys.executable, "-c", SCAN, str(trainers_dir())], capture_output=True,
                          text=True, check=True)
    *names, runs = scan.stdout.splitlines()
    importable = set(names)
    # No module of the folder runs a second time under its package name (mslesseg_nnunet.trainers.X).
    modules = [info.name for info in pkgutil.iter_modules([str(trainers_dir())])]
    assert json.loads(runs) == {f"{name}.py": 1 for name in modules}
    assert set(listed) == importable
    assert EXPECTED <= importable
    assert {f"{name}Short" for name in EXPECTED | {"nnUNetTrainer"}} <= importable
    assert all(description.strip() for description in listed.values())


def test_nnunet_finds_a_listed_trainer_by_name(listed, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    name = "nnUNetTrainerUMambaEncDiceFocal"  # the Short ones are looked up by test_trainers_nnunet
    assert name in listed
    cls = recursive_find_trainer_class_by_name(name)
    assert cls.__name__ == name
    signature = inspect.signature(cls.build_network_architecture)
    assert list(signature.parameters) == ["plans_manager", "configuration_manager", "num_input_channels",
                                          "num_output_channels", "enable_deep_supervision"]


def test_trainer_modules_have_distinct_names():
    names = [info.name for info in pkgutil.iter_modules([str(trainers_dir())])]
    assert names and all(name.startswith("mslesseg_") for name in names)


def test_short_schedule_env_overrides(monkeypatch):
    from mslesseg_nnunet.trainer_mixins import ShortScheduleMixin

    class Probe(ShortScheduleMixin):
        pass

    probe = Probe.__new__(Probe)
    monkeypatch.setenv("MSLESSEG_SHORT_EPOCHS", "3")
    monkeypatch.setenv("MSLESSEG_SHORT_ITERS", "7")
    probe.configure_hyperparameters()
    assert (probe.num_epochs, probe.num_iterations_per_epoch, probe.num_val_iterations_per_epoch) == (3, 7, 2)
    assert probe.initial_lr == 1e-2  # Adam (configure_optimizers of AdamOptimizerMixin)
    monkeypatch.setenv("MSLESSEG_SHORT_ITERS", "zero")
    with pytest.raises(ValueError, match="MSLESSEG_SHORT_ITERS"):
        probe.configure_hyperparameters()
