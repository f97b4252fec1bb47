"""``mslesseg status EXPERIMENT.toml``: each step's state, from its folder and SLURM."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "status", help="show each step of an experiment: done, running, pending, failed, not run",
        description="Show the state of every step of an experiment from its exit-code marker, "
                    "squeue and (when accounting is on) sacct, and the mean Dice of every "
                    "evaluated prediction.")
    p.add_argument("experiment", type=Path, metavar="EXPERIMENT.toml")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.experiment import build_graph, load_experiment
    from mslesseg_nnunet.experiment.progress import format_status, matrix_text, mean_dice_table
    from mslesseg_nnunet.experiment.slurm import step_states
    from mslesseg_nnunet.experiment.state import StateFile

    exp = load_experiment(args.experiment, check_paths=False)
    graph = build_graph(exp)
    state = StateFile(exp)
    states = step_states(exp, graph, state)
    if exp.workdir.is_dir():
        state.refresh(graph, states)
        state.save()
    print(format_status(exp, states))
    for name, dice in mean_dice_table(exp).items():
        print(f"mean Dice {name}: {dice:.3f}")
    matrix = matrix_text(exp)
    if matrix:
        print(matrix)
    return 0
