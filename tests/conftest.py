"""Shared fixtures: the real MSLesSeg scans and a runner for the installed CLI."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository next to shared/; developers may point elsewhere.
SHARED = Path(os.environ.get("MSLESSEG_SHARED", REPO.parent / "shared"))
REAL_DATA = SHARED / "data" / "mslesseg-real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the two real MSLesSeg scans (CC-BY-4.0, see its README.md)."""
    if not REAL_DATA.is_dir():
        pytest.fail(f"real MSLesSeg fixtures not found at {REAL_DATA}; set MSLESSEG_SHARED")
    return REAL_DATA


def mslesseg_executable() -> str:
    exe = shutil.which("mslesseg") or str(Path(sys.executable).parent / "mslesseg")
    return exe


@pytest.fixture
def run_cli(tmp_path):
    """Run the installed ``mslesseg`` command from an unrelated folder.

    Returns a function ``run(*args, env=None, check=True)`` giving the
    CompletedProcess (text mode). nnU-Net folders default to ``tmp_path``.
    """
    base_env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        base_env[var] = str(tmp_path / "nnunet" / var)

    def run(*args, env=None, check=True, timeout=1800):
        full_env = {**base_env, **(env or {})}
        proc = subprocess.run([mslesseg_executable(), *map(str, args)], cwd=tmp_path,
                              env=full_env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"mslesseg {' '.join(map(str, args))} failed "
                                 f"({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def tiny_plans(tmp_path_factory) -> dict[str, Path]:
    """nnU-Net's default and ResEnc plans of a tiny planned dataset ({plans name: json path}),
    planned once per session by the stock planners (read-only for the tests)."""
    from networks_helpers import make_plans

    return make_plans(tmp_path_factory.mktemp("tiny_plans"))
