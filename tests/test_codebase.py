"""The source tree itself: it imports from its root, and the documents it cites exist."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, SHARED

SOURCE_FOLDERS = ("mslesseg_nnunet", "dataset_conversion", "trainers", "postprocessing",
                  "ensembles", "benchmarks")


def python_files() -> list[Path]:
    return sorted(p for folder in SOURCE_FOLDERS for p in (REPO / folder).rglob("*.py"))


def test_cited_documents_exist():
    """Every ``*.md`` a module names is in the repository (``shared/...``: in MSLESSEG_SHARED)."""
    missing = []
    for path in python_files():
        for name in re.findall(r"[\w./-]+\.md\b", path.read_text(encoding="utf-8")):
            target = SHARED / name.removeprefix("shared/") if name.startswith("shared/") \
                else REPO / name
            if not target.is_file():
                missing.append(f"{path.relative_to(REPO)}: {name}")
    assert not missing


# Drops the installed (editable) copy's finder, then imports the product card's folders.
IMPORT_FROM_ROOT = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
import mslesseg_nnunet.dataset_conversion.raw_dataset, mslesseg_nnunet.ensembles
import mslesseg_nnunet.postprocessing.rules, mslesseg_nnunet.trainers
for name in ("mslesseg_nnunet", "mslesseg_nnunet.dataset_conversion.raw_dataset", "mslesseg_nnunet.ensembles",
             "mslesseg_nnunet.postprocessing.rules", "mslesseg_nnunet.trainers"):
    print(sys.modules[name].__file__)
"""


def test_checkout_imports_from_its_root_without_installing():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}  # the root on sys.path
    out = subprocess.run([sys.executable, "-c", IMPORT_FROM_ROOT], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(REPO / p) for p in ("mslesseg_nnunet/__init__.py", "dataset_conversion/raw_dataset.py",
                                           "ensembles/__init__.py", "postprocessing/rules.py",
                                           "trainers/__init__.py")]
