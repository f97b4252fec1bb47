"""Run an experiment's steps one after the other on this machine.

Finished steps (exit code 0 from the same command, outputs present) are
skipped; a failed step stops everything downstream of it, while independent
steps still run; the run ends with a summary and exit code 1 if anything failed.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

from mslesseg_nnunet.experiment.graph import Graph
from mslesseg_nnunet.experiment.schema import Experiment
from mslesseg_nnunet.experiment.state import (
    DONE, FAILED, StateFile, log_tail, prepare_step, scripts_for, steps_to_run, wrapper_lines,
)


def _launch(folder) -> int:
    """Run the step wrapper in its own process group; on Ctrl-C/SIGTERM stop the whole group."""
    wrapper = "\n".join(wrapper_lines(shlex.quote(str(folder))))
    proc = subprocess.Popen(["bash", "-c", wrapper], start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _say(message: str):
    print(message, flush=True)


def run_local(exp: Experiment, graph: Graph) -> int:
    """Run every unfinished step of ``graph`` in dependency order; return 0 if all finished."""
    scripts = scripts_for(exp, graph)
    todo = steps_to_run(exp, graph, scripts)
    state = StateFile(exp)
    state.forget_removed(graph)
    _say(f"{exp.name}: {len(graph)} steps, {len(graph) - len(todo)} already finished, "
         f"{len(todo)} to run (logs in {exp.workdir / 'steps'})")
    signal.signal(signal.SIGTERM, _interrupt)
    failed: list[str] = []
    blocked: set[str] = set()
    start = time.monotonic()
    for i, step in enumerate(todo, 1):
        prefix = f"[{i}/{len(todo)}] {step.id}"
        bad = [d for d in step.deps if d in failed or d in blocked]
        if bad:
            blocked.add(step.id)
            _say(f"{prefix}: not run (depends on {bad[0]}, which did not finish)")
            continue
        _say(f"{prefix}: {' '.join(step.argv[:3])} ...")
        t0 = time.monotonic()
        folder = prepare_step(exp, step, scripts[step.id])
        code = _launch(folder)
        seconds = time.monotonic() - t0
        missing = [str(p) for p in step.outputs if not p.exists()]
        if code == 0 and not missing:
            state.record(step, DONE, seconds=round(seconds, 1), job=None)
            _say(f"{prefix}: done in {seconds:.0f} s")
        else:
            failed.append(step.id)
            reason = f"exit code {code}" if code else f"missing output {missing[0]}"
            state.record(step, FAILED, seconds=round(seconds, 1), job=None, reason=reason)
            _say(f"{prefix}: FAILED ({reason}); log: {folder / 'log.txt'}")
            tail = log_tail(exp, step.id)
            if tail:
                _say("    " + tail.replace("\n", "\n    "))
        state.save()
    state.save()
    total = time.monotonic() - start
    if failed or blocked:
        _say(f"{exp.name}: {len(failed)} step(s) failed ({', '.join(failed)}), "
             f"{len(blocked)} not run because of them; rerun `mslesseg run` to retry only those")
        return 1
    _say(f"{exp.name}: all {len(graph)} steps finished ({total:.0f} s)")
    return 0

