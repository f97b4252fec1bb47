"""Experiment files (TOML): the dataclasses and the parsers of each section (read by ``loading``).

Every problem is reported as one line naming the file and the key, e.g.
``madseg.toml: [training] trainers[2]: unknown trainer 'Foo'``, before any job
starts. The schema is documented in docs/experiments.md (``mslesseg run``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mslesseg_nnunet.ensembles.blending import BLENDINGS, ORACLE_BLENDINGS
from mslesseg_nnunet.components import CONNECTIVITIES, LESION_CONNECTIVITY
from mslesseg_nnunet.experiment.checks import Table, check_range
from mslesseg_nnunet.postprocessing.params import RULES
from mslesseg_nnunet.vocabulary import (DATASET_NAME, DATASET_NAME_RULE, MSLESSEG_FOLDS, MSLESSEG_MODALITIES,
                                       MSSEG2_LABELS, PROTOCOLS, SYNTH_SPACING_RANGE, dataset_folder)

# Datasets as distributed, converted by `mslesseg convert KIND PATH` (add a converter's name here).
CONVERTER_KINDS = ("mslesseg", "msseg2", "isbi2015", "msseg2016", "3dmrms", "folders")
SOURCE_KINDS = (*CONVERTER_KINDS, "synthetic-mslesseg", "synthetic-msseg2", "nnunet")
LABELLING_KINDS = ("binary", "msl", "dbl")
WEIGHTS = ("equal", "cv-dice")
# protocol -> `mslesseg tune --objective` choices, the default first
OBJECTIVES = {"mslesseg": ("dice",), "msseg2": ("rank", "f1")}
DEVICES = ("cuda", "cpu", "mps")
N_FOLDS = 5
# plans identifier -> the planner (-pl) that writes it
PLANNERS = {
    "nnUNetPlans": "ExperimentPlanner",
    "nnUNetResEncUNetMPlans": "nnUNetPlannerResEncM",
    "nnUNetResEncUNetLPlans": "nnUNetPlannerResEncL",
    "nnUNetResEncUNetXLPlans": "nnUNetPlannerResEncXL",
}
# `mslesseg tune` grid options: key -> (low, high, integer values)
GRID_KEYS = {
    "thresholds": (0.0, 1.0, False),
    "min_sizes": (0, None, False),
    "mixes": (0.0, 1.0, False),
    "prob_thresholds": (0.0, 1.0, False),
    "volume_thresholds": (0, None, False),
}
STEP_KINDS = ("synth", "convert", "relabel", "plan", "cpu_plans", "train", "tune", "predict",
              "ensemble", "evaluate", "report", "custom", "merge", "matrix")
RESOURCE_KEYS = ("partition", "gpus", "cpus", "mem", "time", "extra")
EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MEM = re.compile(r"^\d+[KMGT]?$")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")


@dataclass(frozen=True)
class Source:
    """Where the data comes from and the nnU-Net dataset it becomes."""

    kind: str
    dataset_id: int
    name: str
    path: Path | None = None
    options: dict = field(default_factory=dict)
    key: str = ""  # its name in [[sources]] ("" for [source])


@dataclass(frozen=True)
class Labelling:
    """A training target: the binary dataset itself, or an MSL/DBL relabelled copy.

    In a cross-dataset experiment, a training set: one source's dataset (kind
    ``binary``) or several merged (kind ``merge``); ``params["sources"]`` are their keys.
    """

    kind: str
    key: str
    dataset_id: int
    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A trainer class with the plans it trains on."""

    trainer: str
    plans: str = "nnUNetPlans"

    @property
    def key(self) -> str:
        return f"{self.trainer}__{self.plans}"


@dataclass(frozen=True)
class Training:
    configuration: str
    folds: tuple[int, ...]
    device: str
    cpu_plans: bool
    models: tuple[Model, ...]
    preprocess_workers: int
    cpu_patch_size: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Tuning:
    protocol: str
    grid: dict
    size_unit: str | None = None
    connectivity: int | None = None
    objective: str | None = None
    select_members: bool = False


@dataclass(frozen=True)
class Ensemble:
    rule: str
    members: tuple[Model, ...]
    weights: str = "equal"


@dataclass(frozen=True)
class TestSet:
    input: Path
    gt: Path | None
    protocol: str
    report: bool
    tta: bool = True
    workers: int | None = None
    key: str = ""  # its name in [[tests]] ("" for [test])
    source: str | None = None  # the [[sources]] key whose test data it is
    blending: str | None = None


@dataclass(frozen=True)
class CustomStep:
    id: str
    command: tuple[str, ...]
    after: tuple[str, ...]
    outputs: tuple[Path, ...]
    array: str | None = None


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file."""

    file: Path
    name: str
    workdir: Path
    nnunet_root: Path | None
    env: dict  # {None: for every step, kind: for steps of that kind}
    source: Source | None
    labellings: tuple[Labelling, ...]
    training: Training | None
    tuning: Tuning | None
    ensemble: Ensemble | None
    test: TestSet | None
    resources: dict
    custom_steps: tuple[CustomStep, ...]
    sources: tuple[Source, ...] = ()  # [[sources]] of a cross-dataset experiment
    tests: tuple[TestSet, ...] = ()  # its [[tests]]

    def nnunet_dirs(self) -> dict[str, str]:
        """nnUNet_raw/preprocessed/results and nnUNet_extTrainer for every step."""
        return nnunet_dirs(self.nnunet_root)

    def step_env(self, kind: str) -> dict[str, str]:
        """Environment of a step of ``kind``: nnU-Net folders, ``[env]``, ``[env.<kind>]``."""
        return {**self.nnunet_dirs(), **self.env.get(None, {}), **self.env.get(kind, {})}


def nnunet_dirs(nnunet_root: Path | None) -> dict[str, str]:
    """The nnU-Net variables: under ``nnunet_root`` when given, else from the environment."""
    import os

    from mslesseg_nnunet.nnunet_env import NNUNET_DIRS, nnunet_environment

    environ = None
    if nnunet_root is not None:
        environ = {k: v for k, v in os.environ.items() if k not in NNUNET_DIRS}
    return nnunet_environment(nnunet_root, environ)


def parse_section(top: Table, key: str, parse, *args):
    """``parse(table, *args)`` for the optional section ``[key]``; None when it is absent."""
    return parse(top.sub(key), *args) if key in top.data else None


def parse_env(table: Table) -> dict:
    """``{None: global variables, kind: variables for that step kind only}``."""
    env: dict = {None: {}}
    for key, value in table.data.items():
        if isinstance(value, dict):
            if key not in STEP_KINDS:
                table.fail(key, f"unknown step kind (known: {', '.join(STEP_KINDS)})")
            sub = table.sub(key)
            env[key] = {k: str(sub.get(k, (str, int, float))) for k in sub.data}
        else:
            env[None][key] = str(table.get(key, (str, int, float)))
    return env


def parse_dataset_name(table: Table, default: str | None) -> str:
    """``name`` (required when there is no ``default``), checked."""
    name = table.get("name", str) if default is None else table.get("name", str, default)
    if not DATASET_NAME.match(name):
        table.fail("name", f"{name!r} {DATASET_NAME_RULE} (a converter's --name)")
    return name


def parse_source(t: Table, base: Path, workdir: Path, raw: Path, check_paths: bool) -> Source:
    kind = t.choice("kind", SOURCE_KINDS)
    dataset_id = t.integer("dataset_id", 1, 999)
    defaults = {"mslesseg": "MSLesSeg", "synthetic-mslesseg": "SynthMSLesSeg",
                "msseg2": "MSSEG2", "synthetic-msseg2": "SynthMSSEG2"}
    name = parse_dataset_name(t, defaults.get(kind)) if kind != "nnunet" else \
        _existing_dataset_name(t, raw, dataset_id, check_paths)
    options: dict = {}
    path = None
    if kind in ("mslesseg", "msseg2"):
        path = base / t.get("path", str)
        expected = "train" if kind == "mslesseg" else "training"
        if check_paths and not (path / expected).is_dir():
            t.fail("path", f"dataset folder {str(path)!r} not found (or it has no {expected}/ folder)")
    elif kind in CONVERTER_KINDS:
        path = base / t.get("path", str)
        if check_paths and not path.is_dir():
            t.fail("path", f"dataset folder {str(path)!r} not found")
        options["convert_args"] = t.string_list("convert_args", [])
    if kind.endswith("mslesseg"):
        modalities = t.string_list("modalities", list(MSLESSEG_MODALITIES))
        for i, m in enumerate(modalities):
            if m not in MSLESSEG_MODALITIES or modalities.index(m) != i:
                t.fail(f"modalities[{i}]", f"{m!r} is not one of {', '.join(MSLESSEG_MODALITIES)} (each once)")
        if not modalities:
            t.fail("modalities", "needs at least one modality")
        options["modalities"] = modalities
        options["folds"] = t.choice("folds", MSLESSEG_FOLDS, "grouped")
    if kind.endswith("msseg2"):
        options["label"] = t.choice("label", MSSEG2_LABELS, "consensus")
    if kind.startswith("synthetic"):
        path = workdir / "synthetic"
        options["patients"] = t.integer("patients", 1, None, 6)
        options["test_patients"] = t.integer("test_patients", 0, None, 2)
        options["spacing"] = t.number("spacing", *SYNTH_SPACING_RANGE, 1.0)
        options["seed"] = t.integer("seed", 0, None, 0)
        if kind == "synthetic-mslesseg":
            options["timepoints"] = t.integer("timepoints", 1, 4, 1)
    if kind != "nnunet":
        options["workers"] = t.integer("workers", 1, None, 2)
        options["quantile_normalise"] = t.string_list("quantile_normalise", [])
        for i, c in enumerate(options["quantile_normalise"]):
            if c not in options.get("modalities", [c]):
                t.fail(f"quantile_normalise[{i}]", f"{c!r} is not one of the modalities")
    t.finish()
    return Source(kind, dataset_id, name, path, options)


def parse_labellings(top: Table, source: Source | None, file: str) -> tuple[Labelling, ...]:
    items = top.get("labellings", list, None)
    if items is None:
        return () if source is None else (Labelling("binary", "binary", source.dataset_id, source.name or ""),)
    if source is None:
        top.fail("labellings", "needs a [source] section")
    tables = [Table(item, f"[[labellings]][{i}]", file) for i, item in enumerate(items)]
    kinds = [t.choice("kind", LABELLING_KINDS) for t in tables]
    result, used_ids = [], {source.dataset_id}
    for i, (t, kind) in enumerate(zip(tables, kinds)):
        if kind == "binary":
            labelling = Labelling("binary", "binary", source.dataset_id, source.name or "")
        else:
            dataset_id = t.integer("dataset_id", 1, 999)
            if dataset_id in used_ids:
                t.fail("dataset_id", f"{dataset_id} is already used by the source or another labelling")
            used_ids.add(dataset_id)
            key = kind if kinds.count(kind) == 1 else f"{kind}{dataset_id}"
            default_name = f"{source.name or 'Dataset'}_{kind.upper()}"
            labelling = Labelling(kind, key, dataset_id, parse_dataset_name(t, default_name),
                                  _labelling_params(t, kind))
        if kind == "binary" and kinds.count("binary") > 1:
            t.fail("kind", "'binary' labelling listed twice")
        t.finish()
        result.append(labelling)
    if not result:
        top.fail("labellings", "empty list (leave it out for the binary labels)")
    return tuple(result)


def _labelling_params(t: Table, kind: str) -> dict:
    if kind == "msl":
        thresholds = t.get("thresholds", list, [100, 1000])
        if not thresholds or not _positive_ints(thresholds) \
                or thresholds != sorted(set(thresholds)):
            t.fail("thresholds", f"{thresholds!r} must be increasing positive voxel counts")
        connectivity = t.integer("connectivity", default=LESION_CONNECTIVITY)
        if connectivity not in CONNECTIVITIES:
            t.fail("connectivity", f"{connectivity} is not one of 6, 18, 26")
        return {"thresholds": thresholds, "connectivity": connectivity}
    return {"distance2": t.number("distance2", 0, None, 4.5)}


def _model(item, where: str, t: Table, default_plans: str) -> Model:
    if isinstance(item, str):
        model = Model(item, default_plans)
    elif isinstance(item, dict):
        sub = Table(item, f"{t.where} {where}", t.file)
        model = Model(sub.get("trainer", str), sub.get("plans", str, default_plans))
        sub.finish()
    else:
        t.fail(where, f"expected a trainer name or {{trainer = ..., plans = ...}}, got {item!r}")
    if model.plans not in PLANNERS:
        t.fail(where, f"unknown plans {model.plans!r} (known: {', '.join(PLANNERS)})")
    return model


def _models(t: Table, key: str, default_plans: str, check_exists: bool) -> tuple[Model, ...]:
    from mslesseg_nnunet.trainer_catalog import trainer_exists

    items = t.get(key, list)
    if not items:
        t.fail(key, "needs at least one trainer")
    models = []
    for i, item in enumerate(items):
        model = _model(item, f"{key}[{i}]", t, default_plans)
        if check_exists and not trainer_exists(model.trainer):
            t.fail(f"{key}[{i}]", f"unknown trainer {model.trainer!r} (see `mslesseg trainers`)")
        if model in models:
            t.fail(f"{key}[{i}]", f"{model.trainer} with {model.plans} is listed twice")
        models.append(model)
    return tuple(models)


def parse_training(t: Table) -> Training:
    configuration = t.choice("configuration", ("3d_fullres", "2d", "3d_lowres"), "3d_fullres")
    folds = t.get("folds", list, list(range(N_FOLDS)))
    if not folds:
        t.fail("folds", "needs at least one fold")
    for i, fold in enumerate(folds):
        if not isinstance(fold, int) or isinstance(fold, bool):
            t.fail(f"folds[{i}]", f"expected an integer fold, got {fold!r}")
        if not 0 <= fold < N_FOLDS:
            t.fail(f"folds[{i}]", f"fold {fold} is out of range 0..{N_FOLDS - 1}")
        if folds.index(fold) != i:
            t.fail(f"folds[{i}]", f"fold {fold} listed twice")
    device = t.choice("device", DEVICES, "cuda")
    cpu_plans = t.get("cpu_plans", bool, False)
    cpu_patch = _cpu_patch_size(t, cpu_plans)
    workers = t.integer("preprocess_workers", 1, None, 2)
    default_plans = t.get("plans", str, "nnUNetPlans")
    if default_plans not in PLANNERS:
        t.fail("plans", f"unknown plans {default_plans!r} (known: {', '.join(PLANNERS)})")
    models = _models(t, "trainers", default_plans, check_exists=True)
    t.finish()
    return Training(configuration, tuple(folds), device, cpu_plans, models, workers, cpu_patch)


def _positive_ints(values: list) -> bool:
    """Every value is an integer (not a bool) >= 1."""
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)


def _cpu_patch_size(t: Table, cpu_plans: bool) -> tuple[int, int, int] | None:
    """``cpu_patch_size``: three positive voxel counts, only together with ``cpu_plans = true``."""
    patch = t.get("cpu_patch_size", list, None)
    if patch is None:
        return None
    if not cpu_plans:
        t.fail("cpu_patch_size", "needs cpu_plans = true")
    if len(patch) != 3 or not _positive_ints(patch):
        t.fail("cpu_patch_size", f"{patch!r} must be three positive voxel counts (z, y, x)")
    return tuple(patch)


def parse_tuning(t: Table, training: Training | None) -> Tuning:
    if training is None:
        t.fail(None, "needs a [training] section (it tunes on the trained models' validation outputs)")
    protocol = t.choice("protocol", PROTOCOLS)
    grid_table = t.sub("grid", {})
    grid = {}
    for key in list(grid_table.data):
        if key not in GRID_KEYS:
            grid_table.fail(key, f"unknown grid parameter (known: {', '.join(GRID_KEYS)})")
        low, high, _ = GRID_KEYS[key]
        values = grid_table.get(key, list)
        if not values:
            grid_table.fail(key, "empty list of values")
        for i, value in enumerate(values):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                grid_table.fail(f"{key}[{i}]", f"expected a number, got {value!r}")
            check_range(grid_table, f"{key}[{i}]", value, low, high)
        if len(set(values)) != len(values):
            grid_table.fail(key, f"{values!r} repeats a value")
        grid[key] = values
    size_unit = t.choice("size_unit", ("voxels", "mm3"), None)
    connectivity = t.integer("connectivity", default=None)
    if connectivity not in (None, *CONNECTIVITIES):
        t.fail("connectivity", f"{connectivity} is not one of 6, 18, 26")
    objective = t.choice("objective", OBJECTIVES[protocol], None)
    select_members = t.get("select_members", bool, False)
    t.finish()
    return Tuning(protocol, grid, size_unit, connectivity, objective, select_members)


def parse_ensemble(t: Table, training: Training | None, labellings) -> Ensemble:
    if training is None:
        t.fail(None, "needs a [training] section")
    rule = t.choice("rule", RULES, "mean")
    madseg_pair = sorted(lab.kind for lab in labellings) == ["dbl", "msl"]
    if rule == "madseg" and not madseg_pair:
        t.fail("rule", "'madseg' fuses exactly one msl and one dbl labelling")
    if rule == "mean" and madseg_pair:
        t.fail("rule", "msl + dbl members are fused with the 'madseg' rule")
    members = _models(t, "members", "nnUNetPlans", check_exists=False) if "members" in t.data \
        else training.models
    for i, model in enumerate(members):
        if model not in training.models:
            t.fail(f"members[{i}]", f"{model.trainer} with {model.plans} is not in [training] trainers")
    weights = t.choice("weights", WEIGHTS, "equal")
    if weights != "equal" and rule in ("union", "staple"):
        t.fail("weights", f"the {rule} rule does not weight its members")
    t.finish()
    return Ensemble(rule, tuple(members), weights)


def default_test_paths(source: Source, raw: Path) -> tuple[Path | None, Path | None]:
    """The test input and ground truth a source provides, when it has them."""
    if source.kind in ("mslesseg", "synthetic-mslesseg"):
        return source.path / "test", source.path / "test"
    if source.kind in ("msseg2", "synthetic-msseg2"):
        return source.path / "testing", None
    folder = raw / dataset_folder(source.dataset_id, source.name)  # converted or existing
    gt = folder / "labelsTs"
    return folder / "imagesTs", gt if gt.is_dir() or source.kind != "nnunet" else None


def exists_before_run(source: Source | None, given: str | None) -> bool:
    """Whether a test folder must exist when the file is read: given ones, and the defaults
    of data that is not synthesised or converted by the experiment itself."""
    return bool(given) or source is None or source.kind in ("mslesseg", "msseg2", "nnunet")


def check_synthetic_test(t: Table, source: Source | None, given: dict) -> None:
    """Fail on a synthetic source's default test folder that will never be made."""
    if source is not None and source.kind.startswith("synthetic") \
            and source.options.get("test_patients") == 0:
        for key in ("input", "gt"):
            if not given.get(key):
                t.fail(key, "the synthetic source makes no test patients (test_patients = 0): "
                            "set test_patients or give this folder")


def parse_test(t: Table, source: Source | None, base: Path, raw: Path, training,
          check_paths: bool) -> TestSet:
    if training is None or source is None:
        t.fail(None, "needs [source] and [training] sections")
    default_input, default_gt = default_test_paths(source, raw)
    given_input = t.get("input", str, None)
    given_gt = t.get("gt", str, None)
    test_input = base / given_input if given_input else default_input
    gt = base / given_gt if given_gt else (None if given_gt == "" else default_gt)
    if test_input is None:
        t.fail("input", f"required for a source of kind {source.kind!r}")
    check_synthetic_test(t, source, {"input": given_input, "gt": given_gt if gt else "none"})
    if check_paths:
        for key, given, folder in (("input", given_input, test_input), ("gt", given_gt, gt)):
            if folder is not None and exists_before_run(source, given) and not folder.is_dir():
                t.fail(key, f"test folder {str(folder)!r} not found")
    protocol = t.choice("protocol", PROTOCOLS, "msseg2" if source.kind.endswith("msseg2") else "mslesseg")
    report = t.get("report", bool, gt is not None)
    if report and gt is None:
        t.fail("report", "needs ground truth (set gt)")
    tta = t.get("tta", bool, True)
    workers = t.integer("workers", 0, None, None)
    blending = t.choice("blending", BLENDINGS, None)
    if blending in ORACLE_BLENDINGS and gt is None:
        t.fail("blending", f"{blending!r} needs ground truth (set gt)")
    t.finish()
    return TestSet(test_input, gt, protocol, report, tta, workers, blending=blending)


def parse_resources(t: Table) -> dict:
    resources = {}
    for kind in list(t.data):
        if kind != "default" and kind not in STEP_KINDS:
            t.fail(kind, f"unknown step kind (known: default, {', '.join(STEP_KINDS)})")
        sub = t.sub(kind)
        spec = {}
        for key in RESOURCE_KEYS:
            if key not in sub.data:
                continue
            if key == "partition":
                spec[key] = sub.get(key, str)
            elif key in ("gpus", "cpus"):
                spec[key] = sub.integer(key, 0 if key == "gpus" else 1)
            elif key == "mem":
                spec[key] = str(sub.get(key, (str, int)))
                if not _MEM.match(spec[key]):
                    sub.fail(key, f"{spec[key]!r} is not a SLURM memory size such as '16G' or '8000M'")
            elif key == "time":
                spec[key] = str(sub.get(key, (str, int)))
                if not _TIME.match(spec[key]):
                    sub.fail(key, f"{spec[key]!r} is not a SLURM time such as '04:00:00' or '1-00:00:00'")
            else:
                spec[key] = sub.string_list(key)
        sub.finish()
        resources[kind] = spec
    return resources


def parse_custom_steps(top: Table, file: str) -> tuple[CustomStep, ...]:
    steps = []
    for i, item in enumerate(top.get("steps", list, [])):
        t = Table(item, f"[[steps]][{i}]", file)
        step_id = t.get("id", str)
        if not _STEP_ID.match(step_id):
            t.fail("id", f"{step_id!r} must be letters, digits, '_', '-' or '.'")
        command = t.string_list("command")
        if not command:
            t.fail("command", "empty command")
        after = t.string_list("after", [])
        outputs = t.string_list("outputs", [])
        array = t.get("array", str, None)
        t.finish()
        steps.append(CustomStep(step_id, tuple(command), tuple(after),
                                tuple(Path(o) for o in outputs), array))
    return tuple(steps)


def _existing_dataset_name(t: Table, raw: Path, dataset_id: int, check_paths: bool) -> str:
    """The name of nnU-Net dataset ``dataset_id`` in ``raw`` (``name`` must match when given)."""
    given = t.get("name", str, None)
    found = sorted(raw.glob(f"Dataset{dataset_id:03d}_*/dataset.json"))
    if found:
        name = found[0].parent.name.split("_", 1)[1]
        if given is not None and given != name:
            t.fail("name", f"dataset {dataset_id} in nnUNet_raw is named {name!r}, not {given!r}")
        return name
    if check_paths or given is None:
        t.fail("dataset_id", f"dataset {dataset_id} not found in nnUNet_raw ({raw})")
    return given
