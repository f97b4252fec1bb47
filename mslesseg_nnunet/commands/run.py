"""``mslesseg run EXPERIMENT.toml``: run an experiment file locally or on SLURM."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run an experiment file (local or SLURM), resuming finished steps",
        description="Turn an experiment file into a graph of steps (convert, relabel, plan, "
                    "train per fold, tune, predict, ensemble, evaluate, report) and run it. "
                    "Finished steps are skipped; logs go to WORKDIR/steps/<step>/.")
    p.add_argument("experiment", type=Path, metavar="EXPERIMENT.toml")
    p.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: one step after the other here; slurm: sbatch jobs (default local)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the steps (and for slurm the sbatch scripts); run nothing")
    p.add_argument("--wait", action="store_true",
                   help="slurm: wait until the submitted jobs left the queue, then show status")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.experiment import build_graph, load_experiment
    from mslesseg_nnunet.experiment.preflight import check_dataset_ids

    exp = load_experiment(args.experiment)
    graph = build_graph(exp)
    if args.executor == "slurm":
        return _run_slurm(exp, graph, args)
    if args.dry_run:
        from mslesseg_nnunet.experiment.progress import format_graph
        from mslesseg_nnunet.experiment.state import scripts_for, steps_to_run

        todo = steps_to_run(exp, graph, scripts_for(exp, graph))
        print(format_graph(exp, graph, {s.id for s in todo}))
        return 0
    from mslesseg_nnunet.experiment.local import run_local
    from mslesseg_nnunet.experiment.progress import matrix_text

    check_dataset_ids(exp)
    code = run_local(exp, graph)
    matrix = matrix_text(exp)
    if matrix:
        print(matrix)
    return code


def _run_slurm(exp, graph, args) -> int:
    from mslesseg_nnunet.experiment import slurm
    from mslesseg_nnunet.experiment.preflight import check_dataset_ids

    if not args.dry_run:
        check_dataset_ids(exp)
    code = slurm.submit(exp, graph, dry_run=args.dry_run)
    if args.wait and not args.dry_run:
        from mslesseg_nnunet.experiment.progress import format_status
        from mslesseg_nnunet.experiment.state import StateFile

        state = StateFile(exp)
        jobs = [j for j in (state.job(s.id) for s in graph) if j]
        slurm.wait_for_queue(jobs, timeout=float("inf"))
        states = slurm.step_states(exp, graph, state)
        state.refresh(graph, states)
        state.save()
        print(format_status(exp, states))
        code = 0 if all(s == "done" for s, _ in states.values()) else 1
    return code
