"""The source tree itself: imports follow the data flow, the checkout imports from its root,
the documents it cites exist."""
from __future__ import annotations

import ast
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


# The data flow, in order: a stage's modules never import an earlier stage's. Orchestration
# (cli, commands/, experiment/, native/) may import any stage; the shared library is no stage.
STAGES = ("synth", "dataset_conversion", "trainers", "ensembles", "postprocessing", "evaluation")


def stage_of(path: Path) -> str | None:
    parts = path.relative_to(REPO).parts
    name = parts[1] if parts[0] == "mslesseg_nnunet" else parts[0]
    return name if name in STAGES else None


def imported_stages(path: Path) -> set[str]:
    """The stages ``path`` imports (``import``/``from`` anywhere in the module)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return {name.split(".")[1] for name in names
            if name.startswith("mslesseg_nnunet.") and name.split(".")[1] in STAGES}


def test_imports_follow_the_data_flow():
    against = []
    for path in python_files():
        stage = stage_of(path)
        for target in imported_stages(path) if stage else ():
            where = str(path.relative_to(REPO))
            if STAGES.index(target) < STAGES.index(stage):
                against.append(f"{where} imports {target}")
    assert not against


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
