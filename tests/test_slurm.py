"""`mslesseg run --executor slurm` against a real slurmctld/slurmd (.ci/slurm_setup.sh).

In CI (CI=true) a missing or idle-less cluster is a failure; elsewhere the test
skips when `sinfo` is not installed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from experiment_helpers import check_tiny_results, marker_times, read_state, write_tiny_experiment

RESOURCES = """
[resources.default]
cpus = 1
mem = "200M"
time = "00:05:00"
"""


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "sinfo/sbatch not installed"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s in ("idle", "mixed", "allocated") for s in states):
        return f"no usable SLURM node (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"SLURM is not up in CI ({problem}); .ci/slurm_setup.sh should start it")
        pytest.skip(problem)


def _wait_for_jobs(job_ids, timeout=120.0):
    job_ids = {j.split("_")[0] for j in job_ids}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout
        if not job_ids & {line.split("_")[0] for line in out.split()}:
            return
        time.sleep(0.5)
    raise AssertionError(f"jobs {sorted(job_ids)} still queued after {timeout} s")


@pytest.fixture
def cancel_leftovers(tmp_path):
    """Cancel this test's jobs if it fails half-way."""
    yield
    state = tmp_path / "work" / "state.json"
    if state.exists():
        jobs = [e["job"] for e in read_state(tmp_path / "work").values() if e.get("job")]
        subprocess.run(["scancel", *jobs], capture_output=True)


@pytest.mark.slow
def test_slurm_run_cancel_and_resubmit(tmp_path, run_cli, slurm_cluster, cancel_leftovers):
    toml = write_tiny_experiment(tmp_path, seed_sleep=4, resources=RESOURCES)
    work = tmp_path / "work"

    out = run_cli("run", toml, "--executor", "slurm").stdout
    assert "7 to submit in 5 job(s)" in out  # the three folds are one job array
    jobs = {step: entry["job"] for step, entry in read_state(work).items()}
    array_id = jobs["fold0"].split("_")[0]
    assert jobs["fold1"] == f"{array_id}_1" and jobs["fold2"] == f"{array_id}_2"
    script = (work / "slurm" / "custom.folds.sbatch").read_text()
    assert "#SBATCH --array=0-2" in script and "#SBATCH --mem=200M" in script

    # Kill one fold's job while it waits for `seed`: it and everything after it never run.
    subprocess.run(["scancel", jobs["fold1"]], check=True)
    _wait_for_jobs(jobs.values())
    status = run_cli("status", toml).stdout
    for step, expected in [("seed", "done"), ("fold0", "done"), ("fold2", "done"), ("side", "done"),
                           ("fold1", "cancelled"), ("merge", "cancelled"), ("recipe_check", "cancelled")]:
        assert re.search(rf"^{expected}\s+{step}\b", status, re.M), status
    finished = marker_times(work)
    assert set(finished) == {"seed", "fold0", "fold2", "side"}

    # Resubmission reruns exactly the cancelled step and its dependants.
    out = run_cli("run", toml, "--executor", "slurm", "--wait").stdout
    assert "4 finished, 0 queued or running, 3 to submit" in out, out
    assert "tiny: 7 done" in out, out
    state = read_state(work)
    for step in ("seed", "fold0", "fold2", "side"):
        assert state[step]["job"] == jobs[step]
    for step in ("fold1", "merge", "recipe_check"):
        assert state[step]["job"] != jobs[step]
    assert {s: t for s, t in marker_times(work).items() if s in finished} == finished
    check_tiny_results(work)


def test_slurm_dry_run_prints_scripts_and_chains(tmp_path, run_cli):
    toml = write_tiny_experiment(tmp_path, resources=RESOURCES + '\n[resources.custom]\npartition = "debug"\n')
    out = run_cli("run", toml, "--executor", "slurm", "--dry-run").stdout
    assert "job_custom_folds=$(sbatch --parsable --dependency=afterok:${job_seed} --kill-on-invalid-dep=yes" in out
    assert "--dependency=afterok:${job_custom_folds} --kill-on-invalid-dep=yes" in out
    assert "#SBATCH --partition=debug" in out and "#SBATCH --cpus-per-task=1" in out
    assert 'steps=(fold0 fold1 fold2)' in out
    assert not (tmp_path / "work").exists()
