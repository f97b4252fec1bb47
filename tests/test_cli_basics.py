"""The installed ``mslesseg`` command: help, env and one-line errors."""
from __future__ import annotations

import os
import subprocess

from conftest import mslesseg_executable


def test_help_lists_commands(run_cli):
    out = run_cli("--help").stdout
    assert "env" in out


def test_env_prints_exports_and_keeps_existing(run_cli, tmp_path):
    proc = run_cli("env", "--root", tmp_path / "root", env={"nnUNet_raw": "/already/set"})
    lines = dict(line.removeprefix("export ").split("=", 1) for line in proc.stdout.splitlines())
    assert lines["nnUNet_raw"] == "/already/set"
    assert lines["nnUNet_results"] == str(tmp_path / "nnunet" / "nnUNet_results")  # set by run_cli
    trainers = lines["nnUNet_extTrainer"].split(os.pathsep)[0]
    assert os.path.isfile(os.path.join(trainers, "__init__.py"))


def test_env_is_evaluable_by_a_shell(tmp_path):
    script = f'eval "$({mslesseg_executable()} env --root {tmp_path})"; echo "$nnUNet_preprocessed"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "nnUNet_preprocessed")


def test_unknown_option_is_one_line_exit_2(run_cli):
    proc = run_cli("env", "--no-such-option", check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
