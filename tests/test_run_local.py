"""`mslesseg run --executor local`: dependency order, resume, failure isolation, status."""
from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np
from experiment_helpers import check_tiny_results, marker_times, read_state, write_tiny_experiment
from reliability_helpers import run_or_kill


def test_local_run_resumes_and_isolates_failures(tmp_path, run_cli):
    toml = write_tiny_experiment(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "FAIL_fold1").touch()

    first = run_cli("run", toml, check=False)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "fold1: FAILED (exit code 3)" in first.stdout
    assert "merge: not run (depends on fold1" in first.stdout
    assert "recipe_check: not run (depends on merge" in first.stdout
    state = read_state(work)
    assert {s: state[s]["status"] for s in ("seed", "fold0", "fold2", "side", "fold1")} == {
        "seed": "done", "fold0": "done", "fold2": "done", "side": "done", "fold1": "failed"}
    assert "merge" not in state and not (work / "sum.txt").exists()
    assert state["seed"]["outputs"] == [str(work / "seed.txt")]
    # The failed step's own folder holds its command and its log.
    assert (work / "steps" / "fold1" / "exit_code").read_text().strip() == "3"
    assert "nnUNet_raw=" in (work / "steps" / "fold1" / "command.sh").read_text()
    status = run_cli("status", toml).stdout
    assert "failed   fold1" in status and "not run  merge" in status

    before = marker_times(work)
    (work / "FAIL_fold1").unlink()
    second = run_cli("run", toml)
    assert "7 steps, 4 already finished, 3 to run" in second.stdout
    after = marker_times(work)
    rerun = {s for s in after if after[s] != before.get(s)}
    assert rerun == {"fold1", "merge", "recipe_check"}
    check_tiny_results(work)
    assert all(v["status"] == "done" for v in read_state(work).values())

    third = run_cli("run", toml)
    assert "0 to run" in third.stdout and marker_times(work) == after
    # A copy of the file under another name is the same experiment: nothing reruns.
    copy = tmp_path / "copy.toml"
    copy.write_text(toml.read_text())
    assert "0 to run" in run_cli("run", copy).stdout and marker_times(work) == after


def test_changed_command_reruns_step_and_dependants(tmp_path, run_cli):
    toml = write_tiny_experiment(tmp_path, with_recipe=False)
    work = tmp_path / "work"
    run_cli("run", toml)
    before = marker_times(work)
    toml.write_text(toml.read_text().replace("'2 3 4'", "'1 3 4'"))
    out = run_cli("run", toml).stdout
    assert "6 to run" in out
    assert (work / "sum.txt").read_text() == "26"
    assert all(marker_times(work)[s] != before[s] for s in before)
    # An output removed by hand makes its step unfinished again (and only that one).
    (work / "side.txt").unlink()
    out = run_cli("run", toml).stdout
    assert "5 already finished, 1 to run" in out and (work / "side.txt").read_text() == "1"


def test_local_dry_run_prints_graph_and_runs_nothing(tmp_path, run_cli):
    toml = write_tiny_experiment(tmp_path, with_recipe=False)
    out = run_cli("run", toml, "--dry-run").stdout
    assert "step merge [to run] after: fold0, fold1, fold2" in out
    assert not (tmp_path / "work").exists()


def test_status_before_any_run(tmp_path, run_cli):
    toml = write_tiny_experiment(tmp_path, with_recipe=False)
    out = run_cli("status", toml).stdout
    assert "tiny: 6 not run" in out
    assert not (tmp_path / "work").exists()



def test_killed_run_resumes_to_the_uninterrupted_outputs(tmp_path):
    """Fault injection: ``mslesseg run`` killed (SIGKILL, whole process group) at a random moment
    (3 seeds) leaves a readable state; a rerun finishes every step with the outputs of an
    uninterrupted run."""
    toml = write_tiny_experiment(tmp_path, seed_sleep=0.5, with_recipe=False)
    work = tmp_path / "work"
    env = {**os.environ, **{v: str(tmp_path / "nnunet" / v)
                            for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    run = [sys.executable, "-m", "mslesseg_nnunet.cli", "run", str(toml)]
    start = time.monotonic()
    run_or_kill(run, env, None)
    seconds = time.monotonic() - start
    outputs = {p.name: p.read_text() for p in work.glob("*.txt")}
    assert len(outputs) == 6
    for seed in (1, 2, 3):
        shutil.rmtree(work)
        run_or_kill(run, env, np.random.default_rng(seed).uniform(0.2, 0.9) * seconds)
        if (work / "state.json").exists():
            read_state(work)  # whole JSON, never half-written
        run_or_kill(run, env, None)
        assert {p.name: p.read_text() for p in work.glob("*.txt")} == outputs
        assert all(v["status"] == "done" for v in read_state(work).values())
