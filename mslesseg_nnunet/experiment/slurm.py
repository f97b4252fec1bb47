"""Submit an experiment to SLURM: sbatch scripts, job arrays, ``afterok`` chains, job states.

Steps sharing an array key (the folds x trainers of one labelling, the test
predictions, the member evaluations) go into one job array; every other step is
one job. Dependencies are passed on the ``sbatch`` command line as
``--dependency=afterok:JOB`` (a whole array for array members) with ``--kill-on-invalid-dep=yes``, so a
failed step cancels what depends on it. Finished steps are never resubmitted,
steps still queued or running are left alone, and everything else (with its
dependants) is submitted again.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.experiment.graph import Graph, Step
from mslesseg_nnunet.experiment.schema import Experiment
from mslesseg_nnunet.experiment.state import (
    CANCELLED, DONE, FAILED, NOT_RUN, PENDING, RUNNING, StateFile, is_done, prepare_step, read_marker,
    scripts_for, step_dir, steps_to_run, wrapper_lines, fingerprint,
)

ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                 "RESIZING", "SIGNALING", "STAGE_OUT"}


@dataclass
class Unit:
    """One submission: a single step, or several steps as a job array."""

    name: str
    kind: str
    steps: list[Step]

    @property
    def is_array(self) -> bool:
        return len(self.steps) > 1


def _slurm_command(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        raise UserError(f"--executor slurm: `{argv[0]}` not found on PATH (is SLURM installed?)")
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"--executor slurm: `{shlex.join(argv)}` failed: "
                        f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']}")
    return proc.stdout


def resources_for(exp: Experiment, kind: str) -> dict:
    """``[resources.default]`` overridden by ``[resources.<kind>]``."""
    return {**exp.resources.get("default", {}), **exp.resources.get(kind, {})}


def sbatch_script(exp: Experiment, unit: Unit) -> str:
    """The batch script of ``unit`` (resources as ``#SBATCH`` lines; dependencies are not in it)."""
    res = resources_for(exp, unit.kind)
    logs = exp.workdir / "slurm" / "logs"
    pattern = f"{unit.name}-%A_%a.out" if unit.is_array else f"{unit.name}-%j.out"
    lines = ["#!/usr/bin/env bash",
             f"#SBATCH --job-name={exp.name}.{unit.name}",
             f"#SBATCH --output={logs / pattern}"]
    if "partition" in res:
        lines.append(f"#SBATCH --partition={res['partition']}")
    if res.get("gpus"):
        lines.append(f"#SBATCH --gres=gpu:{res['gpus']}")
    if "cpus" in res:
        lines.append(f"#SBATCH --cpus-per-task={res['cpus']}")
    if "mem" in res:
        lines.append(f"#SBATCH --mem={res['mem']}")
    if "time" in res:
        lines.append(f"#SBATCH --time={res['time']}")
    lines += [f"#SBATCH {arg}" for arg in res.get("extra", [])]
    if unit.is_array:
        lines.append(f"#SBATCH --array=0-{len(unit.steps) - 1}")
        lines.append("steps=(" + " ".join(shlex.quote(s.id) for s in unit.steps) + ")")
        step_expr = shlex.quote(str(exp.workdir / "steps")) + '/"${steps[$SLURM_ARRAY_TASK_ID]}"'
    else:
        step_expr = shlex.quote(str(step_dir(exp, unit.steps[0].id)))
    lines += wrapper_lines(step_expr)
    return "\n".join(lines) + "\n"


def make_units(steps: list[Step]) -> list[Unit]:
    """Group ``steps`` (in dependency order) into submissions, ordered so dependencies come first."""
    groups: dict[str, list[Step]] = {}
    for step in steps:
        key = f"{step.array}@{step.kind}" if step.array else step.id
        groups.setdefault(key, []).append(step)
    units = [Unit(_unit_name(members), members[0].kind, members) for members in groups.values()]
    ordered = _order_units(units)
    if ordered is None:  # an array would wait on itself: submit its steps one by one
        return [Unit(s.id, s.kind, [s]) for s in steps]
    return ordered


def _unit_name(members: list[Step]) -> str:
    return members[0].id if len(members) == 1 else members[0].array


def _order_units(units: list[Unit]) -> list[Unit] | None:
    owner = {s.id: i for i, u in enumerate(units) for s in u.steps}
    needs = [{owner[d] for s in u.steps for d in s.deps if d in owner} for u in units]
    ordered, placed = [], set()
    while len(ordered) < len(units):
        ready = [i for i in range(len(units)) if i not in placed and needs[i] <= placed]
        if not ready or any(i in needs[i] for i in ready):
            return None
        for i in ready:
            placed.add(i)
            ordered.append(units[i])
    return ordered


def queue_states() -> dict[str, tuple[str, str]]:
    """Job ref (``123`` or ``123_4``) -> (state, reason) for jobs SLURM still knows."""
    out = _slurm_command("squeue", "-h", "-r", "-o", "%i|%T|%r")
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def accounting_states(job_refs) -> dict[str, str]:
    """Job ref -> final state from ``sacct``; empty when accounting is not available."""
    refs = sorted({r.split("_")[0] for r in job_refs if r})
    if not refs or shutil.which("sacct") is None:
        return {}
    proc = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(refs)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {}
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 2:
            states[parts[0]] = parts[1].split()[0] if parts[1] else ""
    return states


def step_states(exp: Experiment, graph: Graph, state: StateFile) -> dict[str, tuple[str, str]]:
    """Step id -> (status, detail) from exit-code markers, ``squeue`` and ``sacct``."""
    scripts = scripts_for(exp, graph)
    queue = queue_states() if shutil.which("squeue") else {}
    jobs = {s.id: state.job(s.id) for s in graph}
    accounting = accounting_states(j for j in jobs.values() if j and j not in queue)
    result = {}
    for step in graph:
        job = jobs[step.id]
        marker = read_marker(exp, step.id)
        current = marker.fingerprint == fingerprint(scripts[step.id])
        if is_done(exp, step, scripts[step.id]):
            result[step.id] = (DONE, "")
        elif job and job in queue and current:
            slurm_state, reason = queue[job]
            status = RUNNING if slurm_state == "RUNNING" else PENDING
            result[step.id] = (status, f"job {job} {slurm_state.lower()}"
                               + (f" ({reason})" if reason and reason != "None" else ""))
        elif marker.exit_code is not None and current:
            detail = f"exit code {marker.exit_code}" if marker.exit_code else "outputs missing"
            result[step.id] = (FAILED, detail + (f", job {job}" if job else ""))
        elif job and current:
            final = accounting.get(job) or accounting.get(job.split("_")[0])
            result[step.id] = _gone_job_state(job, final, marker.started)
        elif marker.started and current:
            result[step.id] = (RUNNING, "started, no exit code yet (running here, or interrupted)")
        else:
            result[step.id] = (NOT_RUN, "")
    return result


def _gone_job_state(job: str, final: str | None, started: bool) -> tuple[str, str]:
    """A job that left the queue without writing an exit code: cancelled or killed."""
    if final:
        return (CANCELLED if final.startswith("CANCELLED") and not started else FAILED,
                f"job {job} {final.lower()}")
    if started:
        return FAILED, f"job {job} killed (scancel, time limit or node failure): no exit code"
    return CANCELLED, f"job {job} cancelled before it started (scancel or a failed dependency)"


def submit(exp: Experiment, graph: Graph, dry_run: bool = False) -> int:
    """Submit every unfinished step (and its dependants) not already queued; record job ids."""
    state = StateFile(exp)
    state.forget_removed(graph)
    scripts = scripts_for(exp, graph)
    states = {} if dry_run else step_states(exp, graph, state)
    # Jobs still queued or running are left alone (a step started by the local executor is not).
    active = {i for i, (s, _) in states.items() if s in (PENDING, RUNNING) and state.job(i)}
    todo = steps_to_run(exp, graph, scripts, keep=frozenset(active))
    units = make_units(todo)
    if dry_run:
        _print_dry_run(exp, units)
        return 0
    stale = [state.job(s.id) for s in todo if s.id in active]
    if stale:
        _slurm_command("scancel", *stale)
    print(f"{exp.name}: {len(graph)} steps, {sum(s == DONE for s, _ in states.values())} finished, "
          f"{len(active) - len(stale)} queued or running, {len(todo)} to submit "
          f"in {len(units)} job(s)", flush=True)
    refs = {i: state.job(i) for i in active if i not in {s.id for s in todo}}
    for unit in units:
        job_id = _submit_unit(exp, unit, scripts, refs)
        for index, step in enumerate(unit.steps):
            refs[step.id] = f"{job_id}_{index}" if unit.is_array else job_id
            state.record(step, "submitted", job=refs[step.id])
        state.save()
        print(f"  submitted {unit.name}: job {job_id}"
              + (f" ({len(unit.steps)} array tasks)" if unit.is_array else ""), flush=True)
    state.save()
    return 0


def _dependency(unit: Unit, job_of: dict[str, str]) -> list[str]:
    """sbatch options making ``unit`` wait for the jobs (``job_of``: step id -> job) of its deps.

    Whole arrays, not tasks: SLURM 22.05 treats ``afterok:JOB_TASK`` on a task cancelled
    while pending as satisfied, whereas ``afterok:JOB`` waits for every task to succeed.
    """
    deps = sorted({job_of[d] for s in unit.steps for d in s.deps if d in job_of})
    return [f"--dependency=afterok:{':'.join(deps)}", "--kill-on-invalid-dep=yes"] if deps else []


def _submit_unit(exp: Experiment, unit: Unit, scripts: dict[str, str], refs: dict[str, str]) -> str:
    for step in unit.steps:
        prepare_step(exp, step, scripts[step.id])
    script_path = exp.workdir / "slurm" / f"{unit.name}.sbatch"
    (exp.workdir / "slurm" / "logs").mkdir(parents=True, exist_ok=True)
    script_path.write_text(sbatch_script(exp, unit))
    job_of = {step_id: ref.split("_")[0] for step_id, ref in refs.items()}
    out = _slurm_command("sbatch", "--parsable", *_dependency(unit, job_of), str(script_path))
    return out.strip().split(";")[0]


def _print_dry_run(exp: Experiment, units: list[Unit]):
    symbolic = {s.id: f"${{{_shell_var(u.name)}}}" for u in units for s in u.steps}
    print(f"# {exp.name}: {sum(len(u.steps) for u in units)} steps to submit in {len(units)} job(s)")
    for unit in units:
        script = exp.workdir / "slurm" / f"{unit.name}.sbatch"
        dep = " ".join(_dependency(unit, symbolic))
        print(f"\n# ---- {unit.name}: {script}")
        for i, step in enumerate(unit.steps):
            print(f"#   [{i}] {step.id}: {shlex.join(step.argv)}" if unit.is_array
                  else f"#   {step.id}: {shlex.join(step.argv)}")
        print(f"{_shell_var(unit.name)}=$(sbatch --parsable {dep + ' ' if dep else ''}{script})")
        print(sbatch_script(exp, unit), end="")


def _shell_var(name: str) -> str:
    return "job_" + "".join(c if c.isalnum() else "_" for c in name)


def wait_for_queue(job_refs, timeout: float, poll: float = 1.0) -> bool:
    """Wait until none of ``job_refs`` is queued or running; False on timeout."""
    job_ids = {r.split("_")[0] for r in job_refs}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = {r.split("_")[0] for r, (s, _) in queue_states().items() if s in ACTIVE_STATES}
        if not job_ids & queued:
            return True
        time.sleep(poll)
    return False

