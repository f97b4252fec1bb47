"""The source tree itself: the documents it cites exist."""
from __future__ import annotations

import re
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
