"""An experiment as a graph of steps: ids, command lines, dependencies and outputs.

Every step is one stock nnU-Net command or one ``mslesseg`` command, so any
step can be rerun by hand from its ``command.sh``. Step ids read as
``KIND[.LABELLING[.MODEL[.foldF]]]``, e.g. ``train.msl.nnUNetTrainer__nnUNetPlans.fold0``.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from mslesseg_nnunet.ensembles.blending import ORACLE_BLENDINGS
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.experiment.schema import (PLANNERS, Experiment, Labelling, Model, Source,
                                               TestSet)
from mslesseg_nnunet.vocabulary import dataset_folder


@dataclass(frozen=True)
class Step:
    """One job of the experiment.

    Attributes
    ----------
    id : str
        Unique, file-name safe.
    kind : str
        One of ``schema.STEP_KINDS``; selects the SLURM resources.
    argv : tuple of str
        The command line.
    deps : tuple of str
        Ids of the steps that must finish first.
    outputs : tuple of Path
        What the step writes; all must exist for the step to count as finished.
    clean : tuple of Path
        Outputs removed before the command runs (for commands without ``--overwrite``).
    array : str or None
        Steps sharing this key (and never depending on each other) may run as one SLURM job array.
    """

    id: str
    kind: str
    argv: tuple[str, ...]
    deps: tuple[str, ...] = ()
    outputs: tuple[Path, ...] = ()
    clean: tuple[Path, ...] = ()
    array: str | None = None


class Graph:
    """Steps in a dependency-respecting order."""

    def __init__(self, steps: list[Step]):
        self.steps = {s.id: s for s in _topological(steps)}

    def __iter__(self):
        return iter(self.steps.values())

    def __len__(self):
        return len(self.steps)

    def __getitem__(self, step_id: str) -> Step:
        return self.steps[step_id]

    def dependants(self, step_ids) -> set[str]:
        """All steps downstream of ``step_ids`` (not including them)."""
        seen: set[str] = set()
        frontier = set(step_ids)
        while frontier:
            new = {s.id for s in self if set(s.deps) & frontier} - seen
            seen |= new
            frontier = new
        return seen - set(step_ids)


def _topological(steps: list[Step]) -> list[Step]:
    """``steps`` in dependency order (graphlib); among the ready steps, the earliest given first,
    so that an already ordered list stays as it is."""
    by_id: dict[str, Step] = {}
    for step in steps:
        if step.id in by_id:
            raise UserError(f"experiment: step id {step.id!r} defined twice")
        by_id[step.id] = step
    for step in steps:
        for dep in step.deps:
            if dep not in by_id:
                raise UserError(f"experiment: step {step.id!r} depends on unknown step {dep!r}")
    sorter = TopologicalSorter({step.id: step.deps for step in steps})
    try:
        sorter.prepare()
    except CycleError as err:
        raise UserError(f"experiment: dependency cycle {' -> '.join(reversed(err.args[1]))}") from None
    index = {step.id: i for i, step in enumerate(steps)}
    ready: list[tuple[int, str]] = []
    ordered = []
    while sorter.is_active():
        for step_id in sorter.get_ready():
            heapq.heappush(ready, (index[step_id], step_id))
        _, step_id = heapq.heappop(ready)
        ordered.append(by_id[step_id])
        sorter.done(step_id)
    return ordered


class _Paths:
    """Where an experiment's outputs live."""

    def __init__(self, exp: Experiment):
        dirs = exp.nnunet_dirs()
        self.exp = exp
        self.raw = Path(dirs["nnUNet_raw"])
        self.preprocessed = Path(dirs["nnUNet_preprocessed"])
        self.results = Path(dirs["nnUNet_results"])
        self.work = exp.workdir

    @staticmethod
    def dataset(dataset_id: int, name: str) -> str:
        return dataset_folder(dataset_id, name)

    def labelling_dataset(self, lab: Labelling) -> str:
        return self.dataset(lab.dataset_id, lab.name)

    def train_plans(self, model: Model) -> str:
        return model.plans + ("CPU" if self.exp.training.cpu_plans else "")

    def model_dir(self, lab: Labelling, model: Model) -> Path:
        t = self.exp.training
        return (self.results / self.labelling_dataset(lab)
                / f"{model.trainer}__{self.train_plans(model)}__{t.configuration}")

    def prediction(self, lab: Labelling, model: Model, test: TestSet | None = None) -> Path:
        folder = self.work / "predictions" / f"{lab.key}.{model.key}"
        return folder / test.key if test is not None and test.key else folder


def build_graph(exp: Experiment) -> Graph:
    """All steps of ``exp``, from data preparation to the report."""
    paths = _Paths(exp)
    steps: list[Step] = []
    if exp.source is not None or exp.sources:
        steps += _data_steps(exp, paths)
    if exp.training is not None:
        for lab in exp.labellings:
            steps += _training_steps(exp, paths, lab)
        steps += _matrix_steps(exp, paths) if exp.sources else _test_steps(exp, paths)
    steps += _custom_steps(exp)
    return Graph(steps)


def _source_step_id(kind: str, src: Source) -> str:
    """``synth``/``convert`` for ``[source]``, ``synth.KEY``/``convert.KEY`` for ``[[sources]]``."""
    return f"{kind}.{src.key}" if src.key else kind


def _source_ready(src: Source) -> tuple[str, ...]:
    """The step after which ``src``'s raw dataset exists (none for an existing dataset)."""
    return (_source_step_id("convert", src),) if src.kind != "nnunet" else ()


def _source_steps(paths: _Paths, src: Source) -> list[Step]:
    """Synthesise (synthetic kinds) and convert one source."""
    steps, deps = [], ()
    kind = src.kind.removeprefix("synthetic-")
    opts = src.options
    if src.kind.startswith("synthetic"):
        argv = ["mslesseg", "synth", kind, str(src.path), "--patients", str(opts["patients"]),
                "--test-patients", str(opts["test_patients"]), "--spacing", str(opts["spacing"]),
                "--seed", str(opts["seed"]), "--overwrite"]
        if "timepoints" in opts:
            argv += ["--timepoints", str(opts["timepoints"])]
        synth_id = _source_step_id("synth", src)
        steps.append(Step(synth_id, "synth", tuple(argv), outputs=(src.path,)))
        deps = (synth_id,)
    if src.kind != "nnunet":
        argv = ["mslesseg", "convert", kind, str(src.path), "--dataset-id", str(src.dataset_id),
                "--name", src.name, "--workers", str(opts["workers"]), "--overwrite"]
        if kind == "mslesseg":
            argv += ["--modalities", ",".join(opts["modalities"]), "--folds", opts["folds"]]
        elif kind == "msseg2":
            argv += ["--label", opts["label"]]
        argv += opts.get("convert_args", [])
        if opts.get("quantile_normalise"):
            argv += ["--quantile-normalise", ",".join(opts["quantile_normalise"])]
        folder = paths.dataset(src.dataset_id, src.name)
        steps.append(Step(_source_step_id("convert", src), "convert", tuple(argv), deps,
                          outputs=(paths.raw / folder / "dataset.json",)))
    return steps


def _data_steps(exp: Experiment, paths: _Paths) -> list[Step]:
    steps = [step for src in exp.sources or (exp.source,) for step in _source_steps(paths, src)]
    for lab in exp.labellings:
        if lab.kind == "merge":
            steps.append(_merge_step(exp, paths, lab))
        elif lab.kind != "binary":
            steps.append(_relabel_step(exp, paths, lab))
    return steps


def _relabel_step(exp: Experiment, paths: _Paths, lab: Labelling) -> Step:
    src = exp.source
    argv = ["mslesseg", "relabel", lab.kind, "--source", str(src.dataset_id),
            "--dataset-id", str(lab.dataset_id), "--name", lab.name, "--overwrite"]
    if lab.kind == "msl":
        argv += ["--connectivity", str(lab.params["connectivity"]),
                 "--thresholds", ",".join(map(str, lab.params["thresholds"]))]
    else:
        argv += ["--distance2", str(lab.params["distance2"])]
    return Step(f"relabel.{lab.key}", "relabel", tuple(argv), _source_ready(src),
                outputs=(paths.raw / paths.labelling_dataset(lab) / "dataset.json",))


def _sources_of(exp: Experiment, lab: Labelling) -> list[Source]:
    """The ``[[sources]]`` a cross-dataset training set is made of."""
    return [s for key in lab.params["sources"] for s in exp.sources if s.key == key]


def _merge_step(exp: Experiment, paths: _Paths, lab: Labelling) -> Step:
    sources = _sources_of(exp, lab)
    argv = ["mslesseg", "merge", "--sources", *(str(s.dataset_id) for s in sources),
            "--dataset-id", str(lab.dataset_id), "--name", lab.name, "--overwrite"]
    if lab.params["channels"]:
        argv += ["--channels", ",".join(lab.params["channels"])]
    normalised = [c for s in sources for c in s.options.get("quantile_normalise", [])]
    normalised = [c for c in dict.fromkeys(normalised) if c in (lab.params["channels"] or normalised)]
    if normalised:
        argv += ["--quantile-normalise", ",".join(normalised)]
    return Step(f"merge.{lab.key}", "merge", tuple(argv),
                tuple(d for s in sources for d in _source_ready(s)),
                outputs=(paths.raw / paths.labelling_dataset(lab) / "dataset.json",))


def labelling_ready_step(exp: Experiment, lab: Labelling) -> tuple[str, ...]:
    """The step after which ``lab``'s raw dataset exists (none for an existing dataset)."""
    if lab.kind == "merge":
        return (f"merge.{lab.key}",)
    if lab.kind != "binary":
        return (f"relabel.{lab.key}",)
    return _source_ready(_sources_of(exp, lab)[0] if exp.sources else exp.source)


def _training_steps(exp: Experiment, paths: _Paths, lab: Labelling) -> list[Step]:
    t = exp.training
    pre = paths.preprocessed / paths.labelling_dataset(lab)
    plan_id = f"plan.{lab.key}"
    steps = [Step(plan_id, "plan", (
        "nnUNetv2_plan_and_preprocess", "-d", str(lab.dataset_id), "-c", t.configuration,
        "-np", str(t.preprocess_workers), "-npfp", str(t.preprocess_workers)),
        labelling_ready_step(exp, lab), outputs=(pre / "nnUNetPlans.json",))]
    plans_step = {"nnUNetPlans": plan_id}
    for plans in dict.fromkeys(m.plans for m in t.models):
        if plans == "nnUNetPlans":
            continue
        step_id = f"plan.{lab.key}.{plans}"
        steps.append(Step(step_id, "plan", ("nnUNetv2_plan_experiment", "-d", str(lab.dataset_id),
                                            "-pl", PLANNERS[plans]),
                          (plan_id,), outputs=(pre / f"{plans}.json",)))
        plans_step[plans] = step_id
    if t.cpu_plans:
        for plans in list(plans_step):
            step_id = f"cpu_plans.{lab.key}.{plans}"
            cpu = plans + "CPU"
            steps.append(Step(step_id, "cpu_plans", (
                "mslesseg", "cpu-plans", "-d", str(lab.dataset_id), "--source-plans", plans,
                "--plans-name", cpu, "--configuration", t.configuration, "--overwrite",
                *(("--patch-size", *map(str, t.cpu_patch_size)) if t.cpu_patch_size else ())),
                (plans_step[plans],), outputs=(pre / f"{cpu}.json",)))
            plans_step[plans] = step_id
    for model in t.models:
        for fold in t.folds:
            argv = ("nnUNetv2_train", str(lab.dataset_id), t.configuration, str(fold),
                    "-tr", model.trainer, "-p", paths.train_plans(model), "--npz",
                    "-device", t.device)
            steps.append(Step(f"train.{lab.key}.{model.key}.fold{fold}", "train", argv,
                              (plans_step[model.plans],),
                              outputs=(paths.model_dir(lab, model) / f"fold_{fold}" / "checkpoint_final.pth",),
                              array=f"train.{lab.key}"))
    return steps


def _train_ids(exp: Experiment, lab: Labelling, model: Model) -> tuple[str, ...]:
    return tuple(f"train.{lab.key}.{model.key}.fold{f}" for f in exp.training.folds)


def _tune_step(exp: Experiment, paths: _Paths, members) -> Step:
    model_dirs = [str(paths.model_dir(lab, m)) for lab in exp.labellings for m in members]
    deps = [s for lab in exp.labellings for m in members for s in _train_ids(exp, lab, m)]
    out, tuning = paths.work / "tune", exp.tuning
    argv = ["mslesseg", "tune", "--models", *model_dirs, "--folds", *map(str, exp.training.folds),
            "--protocol", tuning.protocol, "-o", str(out / "tuned.json"),
            "--table", str(out / "table.csv")]
    for key, values in tuning.grid.items():
        argv += [f"--{key.replace('_', '-')}", *map(str, values)]
    if tuning.size_unit:
        argv += ["--size-unit", tuning.size_unit]
    if tuning.connectivity:
        argv += ["--connectivity", str(tuning.connectivity)]
    argv += _tune_choices(exp)
    return Step("tune", "tune", tuple(argv), tuple(deps), outputs=(out / "tuned.json",), clean=(out,))


def _tune_choices(exp: Experiment) -> list[str]:
    """Objective, member selection, and the ensemble's rule and weights when tune must know them."""
    tuning, ens = exp.tuning, exp.ensemble
    argv = ["--objective", tuning.objective] if tuning.objective else []
    if tuning.select_members:
        argv.append("--select-members")
    if ens is not None and ens.rule in ("union", "staple"):
        argv += ["--rule", ens.rule]
    if ens is not None and ens.weights != "equal":
        argv += ["--weights", ens.weights]
    return argv


def _predict_argv(exp: Experiment, test: TestSet, out: Path, model_dirs,
                  extra=()) -> tuple[str, ...]:
    t = exp.training
    argv = ["mslesseg", "predict", "-i", str(test.input), "-o", str(out), "--models",
            *map(str, model_dirs), "--folds", *map(str, t.folds), "--device", t.device,
            "--overwrite", *extra]
    if not test.tta:
        argv.append("--disable-tta")
    if test.workers is not None:
        argv += ["--workers", str(test.workers)]
    if test.blending is not None:
        argv += ["--blending", test.blending]
        if test.blending in ORACLE_BLENDINGS:
            argv += ["--oracle-gt", str(test.gt)]
    return tuple(argv)


def _test_steps(exp: Experiment, paths: _Paths) -> list[Step]:
    """Tuning, test predictions of every model and of the ensemble, evaluation, report."""
    t, ens = exp.training, exp.ensemble
    members = ens.members if ens is not None else t.models
    steps = [_tune_step(exp, paths, members)] if exp.tuning is not None else []
    if exp.test is None:
        return steps
    evaluated = {}
    keep = ("--save-probabilities",) if ens is not None else ()  # the ensemble fuses them
    test, link = _linked_input(paths, exp.test, _source_ready(exp.source))
    data = (link.id,) if link else ()
    steps += [link] if link else []
    for lab in exp.labellings:
        for model in t.models:
            name, out = f"{lab.key}.{model.key}", paths.prediction(lab, model)
            steps.append(Step(f"predict.{name}", "predict",
                              _predict_argv(exp, test, out, [paths.model_dir(lab, model)], keep),
                              (*_train_ids(exp, lab, model), *data), outputs=(out,),
                              array="predict"))
            evaluated[name] = (f"predict.{name}", out)
    if ens is not None:
        steps.append(_ensemble_step(exp, paths))
        evaluated["ensemble"] = ("ensemble", paths.work / "ensemble")
    if exp.test.gt is not None:
        steps += [_evaluate_step(exp.test, paths, name, *pred) for name, pred in evaluated.items()]
    if exp.test.report:
        steps.append(_report_step(exp, paths, *evaluated.get("ensemble", next(iter(evaluated.values())))))
    return steps


def _ensemble_step(exp: Experiment, paths: _Paths) -> Step:
    """``mslesseg ensemble`` of the members' test predictions (their saved probabilities)."""
    ens, out = exp.ensemble, paths.work / "ensemble"
    members = [(lab, m) for lab in exp.labellings for m in ens.members]
    argv = ["mslesseg", "ensemble", "-i", *(str(paths.prediction(lab, m)) for lab, m in members),
            "-o", str(out), "--rule", ens.rule, "--overwrite"]
    deps = [f"predict.{lab.key}.{m.key}" for lab, m in members]
    if exp.tuning is not None:  # it fixes the weights (and members) when it chose them
        argv += ["--params", str(paths.work / "tune" / "tuned.json")]
        deps.append("tune")
    elif ens.weights != "equal":
        argv += ["--weights", ens.weights]
    return Step("ensemble", "ensemble", tuple(argv), tuple(deps), outputs=(out,))


def _evaluate_step(test: TestSet, paths: _Paths, name: str, pred_step: str, pred: Path) -> Step:
    out = paths.work / "evaluation" / name
    argv = ("mslesseg", "evaluate", str(pred), str(test.gt), "--protocol", test.protocol,
            "--output", str(out / "metrics.csv"), "--summary", str(out / "summary.json"))
    return Step(f"evaluate.{name}", "evaluate", argv, (pred_step,), outputs=(out / "summary.json",),
                clean=(out,), array=None if name == "ensemble" else "evaluate")


def _linked_input(paths: _Paths, test: TestSet, deps) -> tuple[TestSet, Step | None]:
    """``test`` as predicted, and the step (after ``deps``) that links its input, if needed.

    Predicting a converted dataset's own ``imagesTr``/``imagesTs`` writes masks back in the
    source's naming (its ``case_map.json``), while the references are its ``labelsTr``/
    ``labelsTs`` under nnU-Net case ids: such a folder is predicted through a link.
    """
    if test.input.name not in ("imagesTr", "imagesTs"):
        return test, None
    step_id = f"inputs.{test.key}" if test.key else "inputs"
    link = paths.work / step_id
    step = Step(step_id, "convert", ("ln", "-sfn", str(test.input), str(link)), tuple(deps),
                outputs=(link,))
    return replace(test, input=link), step


def _matrix_steps(exp: Experiment, paths: _Paths) -> list[Step]:
    """Cross-dataset: each training set's models predict and evaluate each test set; the matrix."""
    steps, cells, inputs = [], [], []
    for test in exp.tests:
        data = [d for s in exp.sources if s.key == test.source for d in _source_ready(s)]
        test, link = _linked_input(paths, test, data)
        if link:
            steps.append(link)
            data = [link.id]
        inputs.append((test, data))
    models = exp.training.models
    for lab in exp.labellings:
        for model in models:
            row = lab.key if len(models) == 1 else f"{lab.key}/{model.key}"
            for test, data in inputs:
                name, out = f"{lab.key}.{model.key}.{test.key}", paths.prediction(lab, model, test)
                steps.append(Step(f"predict.{name}", "predict",
                                  _predict_argv(exp, test, out, [paths.model_dir(lab, model)]),
                                  (*_train_ids(exp, lab, model), *data), outputs=(out,),
                                  array="predict"))
                steps.append(_evaluate_step(test, paths, name, f"predict.{name}", out))
                cells.append((row, test.key, steps[-1]))
    out = paths.work / "matrix"
    argv = ["mslesseg", "matrix", "-o", str(out)]
    for row, col, evaluate in cells:
        argv += ["--cell", row, col, str(evaluate.outputs[0].with_name("metrics.csv"))]
    steps.append(Step("matrix", "matrix", tuple(argv), tuple(e.id for _, _, e in cells),
                      outputs=(out / "matrix.csv", out / "index.html"), clean=(out,)))
    return steps


def _report_step(exp: Experiment, paths: _Paths, pred_step: str, pred: Path) -> Step:
    out = paths.work / "report"
    argv = ("mslesseg", "report", "--images", str(exp.test.input), "--pred", str(pred),
            "--gt", str(exp.test.gt), "-o", str(out))
    return Step("report", "report", argv, (pred_step,), outputs=(out / "index.html",), clean=(out,))


def _custom_steps(exp: Experiment) -> list[Step]:
    return [Step(c.id, "custom", c.command, c.after,
                 outputs=tuple(exp.workdir / o for o in c.outputs),
                 array=f"custom.{c.array}" if c.array else None) for c in exp.custom_steps]


def evaluation_summaries(exp: Experiment) -> dict[str, Path]:
    """Evaluated prediction name -> its ``summary.json`` (existing or not)."""
    return {s.id.removeprefix("evaluate."): s.outputs[0]
            for s in build_graph(exp) if s.kind == "evaluate"}
