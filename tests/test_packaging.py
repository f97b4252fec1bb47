"""Every source folder is installed as a sub-package of mslesseg_nnunet."""
from __future__ import annotations

import importlib
from conftest import REPO

# Top-level folders fixed by the product card and the package they install as.
MAPPED = {
    "mslesseg_nnunet": "mslesseg_nnunet",
    "dataset_conversion": "mslesseg_nnunet.dataset_conversion",
    "trainers": "mslesseg_nnunet.trainers",
    "postprocessing": "mslesseg_nnunet.postprocessing",
    "ensembles": "mslesseg_nnunet.ensembles",
}


def source_modules():
    for folder, package in MAPPED.items():
        root = REPO / folder
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts])


def test_every_source_module_is_installed():
    missing = []
    for name in source_modules():
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                missing.append(name)
            else:
                raise
    assert not missing, f"not installed (add the folder to pyproject packages): {missing}"


def test_generic_folder_names_are_not_top_level_packages():
    """Neither the install nor the test run exposes `trainers` etc. as top-level imports."""
    import importlib.util

    for folder in ("trainers", "postprocessing", "ensembles", "dataset_conversion"):
        assert importlib.util.find_spec(folder) is None, folder


def test_declared_python_has_every_stdlib_module_we_import():
    """requires-python must admit only interpreters that have the stdlib modules our sources import."""
    import ast
    import re
    import tomllib

    added_in = {"tomllib": (3, 11), "graphlib": (3, 9), "zoneinfo": (3, 9)}
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    declared = tuple(int(v) for v in re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups())
    for folder in MAPPED:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                for name in names:
                    needed = added_in.get(name.split(".")[0])
                    assert needed is None or needed <= declared, \
                        f"{path.relative_to(REPO)} imports {name} (Python {needed}), pyproject admits {spec}"
