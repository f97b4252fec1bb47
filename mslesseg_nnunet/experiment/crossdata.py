"""Cross-dataset experiment keys: ``[[sources]]``, ``[[training_sets]]``, ``[[tests]]``.

- ``[[sources]]``: datasets, each with a ``key`` and the keys of ``[source]``;
  each becomes its own nnU-Net dataset.
- ``[[training_sets]]``: the matrix rows. ``sources`` lists source keys; one
  source trains on its dataset, several on a merged dataset (``dataset_id``,
  optional ``name`` and ``channels``). Default: every source alone.
- ``[[tests]]``: the matrix columns, each with its own reference and protocol:
  ``source`` (a source key: its test data, or with ``part = "train"`` its
  training data, and its protocol by default) and/or ``input`` and ``gt``;
  ``key``, ``protocol``, ``tta``, ``workers``.

A file has either ``[source]`` or ``[[sources]]``; the cross-dataset form
has no ``[[labellings]]``, ``[tuning]``, ``[ensemble]`` or ``[test]``.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from mslesseg_nnunet.ensembles.blending import BLENDINGS
from mslesseg_nnunet.experiment.checks import Table
from mslesseg_nnunet.experiment.schema import (Labelling, Source, TestSet,
                                               parse_dataset_name, parse_source, default_test_paths,
                                               check_synthetic_test, exists_before_run)
from mslesseg_nnunet.vocabulary import PROTOCOLS, dataset_folder

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*$")
_NOT_CROSS = {"labellings": "", "tuning": "", "ensemble": "", "test": " (use [[tests]])"}


def _key(t: Table, name: str, default) -> str:
    value = t.get(name, str) if default is None else t.get(name, str, default)
    if not _KEY.match(value):
        t.fail(name, f"{value!r} must be letters, digits, '_', '-' or '+'")
    return value


def parse_sources(top: Table, base: Path, workdir: Path, raw: Path,
                  check_paths: bool) -> tuple[Source, ...]:
    """The ``[[sources]]`` (empty when the file has none)."""
    items = top.get("sources", list, None)
    if items is None:
        for key in ("training_sets", "tests"):
            if key in top.data:
                top.fail(key, "needs [[sources]] (a cross-dataset experiment)")
        return ()
    if "source" in top.data:
        top.fail("sources", "use either [source] or [[sources]], not both")
    for key, hint in _NOT_CROSS.items():
        if key in top.data:
            top.fail(key, f"not available in a cross-dataset experiment ([[sources]]){hint}")
    if not items:
        top.fail("sources", "empty list")
    sources: list[Source] = []
    for i, item in enumerate(items):
        t = Table(item, f"[[sources]][{i}]", top.file)
        key = _key(t, "key", None)
        if any(s.key == key for s in sources):
            t.fail("key", f"{key!r} is already used by another source")
        src = parse_source(t, base, workdir, raw, check_paths)
        for other in sources:
            if other.dataset_id == src.dataset_id:
                t.fail("dataset_id", f"{src.dataset_id} is already used by source {other.key!r}")
        if src.kind.startswith("synthetic"):
            src = replace(src, path=workdir / "synthetic" / key)
        sources.append(replace(src, key=key))
    return tuple(sources)


def parse_training_sets(top: Table, sources: tuple[Source, ...]) -> tuple[Labelling, ...]:
    """The ``[[training_sets]]`` as training targets (default: every source alone)."""
    items = top.get("training_sets", list, None)
    if items is None:
        return tuple(Labelling("binary", s.key, s.dataset_id, s.name, {"sources": [s.key]})
                     for s in sources)
    if not items:
        top.fail("training_sets", "empty list (leave it out to train on every source alone)")
    by_key = {s.key: s for s in sources}
    used_ids = {s.dataset_id for s in sources}
    result: list[Labelling] = []
    for i, item in enumerate(items):
        t = Table(item, f"[[training_sets]][{i}]", top.file)
        names = t.string_list("sources")
        if not names:
            t.fail("sources", "needs at least one source key")
        for j, name in enumerate(names):
            if name not in by_key:
                t.fail(f"sources[{j}]", f"unknown source {name!r} (known: {', '.join(by_key)})")
            if names.index(name) != j:
                t.fail(f"sources[{j}]", f"{name!r} listed twice")
        key = _key(t, "key", "+".join(names))
        if any(lab.key == key for lab in result):
            t.fail("key", f"{key!r} is already used by another training set")
        if len(names) == 1:
            src = by_key[names[0]]
            lab = Labelling("binary", key, src.dataset_id, src.name, {"sources": names})
        else:
            dataset_id = t.integer("dataset_id", 1, 999)
            if dataset_id in used_ids:
                t.fail("dataset_id", f"{dataset_id} is already used by a source or another "
                                     "training set")
            used_ids.add(dataset_id)
            name = parse_dataset_name(t, "_".join(by_key[n].name for n in names))
            lab = Labelling("merge", key, dataset_id, name,
                            {"sources": names, "channels": t.string_list("channels", [])})
        t.finish()
        result.append(lab)
    return tuple(result)


def _source_paths(src: Source, raw: Path, part: str) -> tuple[Path, Path | None]:
    """A source's test (or training) images and references."""
    if part == "test":
        images, refs = default_test_paths(src, raw)
        return images, images.parent / "labelsTs" if src.kind == "nnunet" else refs
    if src.kind.endswith("mslesseg"):
        return src.path / "train", src.path / "train"
    if src.kind.endswith("msseg2"):
        return src.path / "training", src.path / "training"
    folder = raw / dataset_folder(src.dataset_id, src.name)
    return folder / "imagesTr", folder / "labelsTr"


def parse_tests(top: Table, sources: tuple[Source, ...], base: Path, raw: Path, training,
                check_paths: bool) -> tuple[TestSet, ...]:
    """The ``[[tests]]`` (empty when the file has none)."""
    items = top.get("tests", list, None)
    if items is None:
        return ()
    if training is None:
        top.fail("tests", "needs a [training] section")
    if not items:
        top.fail("tests", "empty list")
    by_key = {s.key: s for s in sources}
    tests: list[TestSet] = []
    for i, item in enumerate(items):
        t = Table(item, f"[[tests]][{i}]", top.file)
        src_key = t.get("source", str, None)
        if src_key is not None and src_key not in by_key:
            t.fail("source", f"unknown source {src_key!r} (known: {', '.join(by_key)})")
        src = by_key.get(src_key)
        key = _key(t, "key", src_key)
        if any(test.key == key for test in tests):
            t.fail("key", f"{key!r} is already used by another test set")
        part = t.choice("part", ("test", "train"), "test")
        default_input, default_gt = _source_paths(src, raw, part) if src else (None, None)
        given = {name: t.get(name, str, None) for name in ("input", "gt")}
        folders = {"input": base / given["input"] if given["input"] else default_input,
                   "gt": base / given["gt"] if given["gt"] else default_gt}
        if folders["input"] is None:
            t.fail("input", "required (or name a source with test data)")
        if part == "test":
            check_synthetic_test(t, src, given)
        if folders["gt"] is None:
            t.fail("gt", "required (the matrix scores every test set against its reference)")
        for name, folder in folders.items():
            if check_paths and exists_before_run(src, given[name]) and not folder.is_dir():
                t.fail(name, f"test folder {str(folder)!r} not found")
        msseg2 = src is not None and src.kind.endswith("msseg2")
        protocol = t.choice("protocol", PROTOCOLS, "msseg2" if msseg2 else "mslesseg")
        tta = t.get("tta", bool, True)
        workers = t.integer("workers", 0, None, None)
        blending = t.choice("blending", BLENDINGS, None)
        t.finish()
        tests.append(TestSet(folders["input"], folders["gt"], protocol, False, tta, workers,
                             key, src_key, blending))
    return tuple(tests)
