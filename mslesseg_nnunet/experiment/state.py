"""Per-step folders, exit-code markers and the experiment's JSON state file.

Each step has ``WORKDIR/steps/<id>/`` holding ``command.sh`` (the exact command
with its environment; ``bash command.sh`` reruns it by hand), ``fingerprint``
(hash of that script when it was launched), ``started``, ``log.txt`` and
``exit_code``. Both executors launch a step through the same shell wrapper,
which writes ``exit_code`` when the command ends, so a step's outcome is known
from its folder even without SLURM accounting. ``WORKDIR/state.json`` records
each step's status, outputs and SLURM job id.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mslesseg_nnunet.atomic import atomic_file, write_json
from mslesseg_nnunet.experiment.graph import Graph, Step
from mslesseg_nnunet.experiment.schema import Experiment

DONE, FAILED, CANCELLED, RUNNING, PENDING, NOT_RUN = (
    "done", "failed", "cancelled", "running", "pending", "not run")


def step_dir(exp: Experiment, step_id: str) -> Path:
    return exp.workdir / "steps" / step_id


def command_script(exp: Experiment, step: Step) -> str:
    """The ``command.sh`` text of ``step``: environment, clean-up, then the command."""
    env = exp.step_env(step.kind)
    bin_dir = str(Path(sys.executable).parent)
    lines = [
        "#!/usr/bin/env bash",
        f"# Step {step.id} of experiment {exp.name} ({exp.file}), written by `mslesseg run`.",
        "# Rerun it by hand with: bash command.sh",
        "set -euo pipefail",
        f'export PATH={shlex.quote(bin_dir)}:"$PATH"',
        *(f"export {key}={shlex.quote(value)}" for key, value in env.items()),
        f"mkdir -p {shlex.quote(str(exp.workdir))} && cd {shlex.quote(str(exp.workdir))}",
        *(f"rm -rf -- {shlex.quote(str(p))}" for p in step.clean),
        "exec " + shlex.join(step.argv),
    ]
    return "\n".join(lines) + "\n"


def fingerprint(script: str) -> str:
    """Hash of what a step does: its script without comments (which name the experiment file)."""
    body = "\n".join(line for line in script.splitlines() if not line.startswith("#"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def wrapper_lines(step_dir_expr: str) -> list[str]:
    """Bash lines that run ``$step_dir/command.sh`` into ``log.txt`` and record ``exit_code``."""
    return [
        f"step_dir={step_dir_expr}",
        'rm -f "$step_dir/exit_code"',
        'date -u +%Y-%m-%dT%H:%M:%SZ > "$step_dir/started"',
        "rc=0",
        'bash "$step_dir/command.sh" > "$step_dir/log.txt" 2>&1 || rc=$?',
        'echo "$rc" > "$step_dir/exit_code.tmp" && mv "$step_dir/exit_code.tmp" "$step_dir/exit_code"',
        'exit "$rc"',
    ]


def prepare_step(exp: Experiment, step: Step, script: str) -> Path:
    """Write the step folder for a new launch; forget the previous launch's outcome."""
    folder = step_dir(exp, step.id)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("exit_code", "started", "log.txt"):
        (folder / name).unlink(missing_ok=True)
    with atomic_file(folder / "command.sh") as tmp:
        tmp.write_text(script)
        tmp.chmod(0o755)
    with atomic_file(folder / "fingerprint") as tmp:
        tmp.write_text(fingerprint(script) + "\n")
    return folder


@dataclass(frozen=True)
class Marker:
    """What a step's folder says about its last launch."""

    fingerprint: str | None
    started: bool
    exit_code: int | None


def read_marker(exp: Experiment, step_id: str) -> Marker:
    folder = step_dir(exp, step_id)

    def text(name):
        try:
            return (folder / name).read_text().strip()
        except OSError:
            return None

    code = text("exit_code")
    return Marker(text("fingerprint"), (folder / "started").exists(),
                  int(code) if code and code.lstrip("-").isdigit() else None)


def is_done(exp: Experiment, step: Step, script: str) -> bool:
    """Finished with exit code 0 from the current command, and every output present."""
    marker = read_marker(exp, step.id)
    return (marker.exit_code == 0 and marker.fingerprint == fingerprint(script)
            and all(p.exists() for p in step.outputs))


def log_tail(exp: Experiment, step_id: str, lines: int = 15) -> str:
    try:
        text = (step_dir(exp, step_id) / "log.txt").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class StateFile:
    """``WORKDIR/state.json``: per step status, outputs, job id and times."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.path = exp.workdir / "state.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("steps", {})
        self.data["experiment"] = str(exp.file)

    def steps(self) -> dict:
        return self.data["steps"]

    def job(self, step_id: str) -> str | None:
        return self.steps().get(step_id, {}).get("job")

    def record(self, step: Step, status: str, **fields):
        self.steps()[step.id] = dict(status=status, outputs=[str(p) for p in step.outputs],
                                     updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     **fields)

    def refresh(self, graph: Graph, states: dict[str, tuple[str, str]]):
        """Record the statuses computed by ``mslesseg status`` (job ids are kept)."""
        for step in graph:
            status, detail = states[step.id]
            job = self.job(step.id)
            self.record(step, status, job=job, **({"detail": detail} if detail else {}))

    def forget_removed(self, graph: Graph):
        """Drop entries of steps no longer in the experiment."""
        for step_id in list(self.steps()):
            if step_id not in graph.steps:
                del self.steps()[step_id]

    def save(self):
        self.exp.workdir.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)


def scripts_for(exp: Experiment, graph: Graph) -> dict[str, str]:
    """Step id -> its ``command.sh`` text."""
    return {step.id: command_script(exp, step) for step in graph}


def steps_to_run(exp: Experiment, graph: Graph, scripts: dict[str, str], keep=frozenset()) -> list[Step]:
    """Steps that are not finished, plus everything downstream of them, in order.

    ``keep`` are step ids treated as finished-or-under-way (e.g. SLURM jobs still queued).
    """
    unfinished = {s.id for s in graph if s.id not in keep and not is_done(exp, s, scripts[s.id])}
    selected = unfinished | graph.dependants(unfinished)
    return [s for s in graph if s.id in selected]
