"""Seconds per CPU training iteration with each issue-15 augmentation / loss against nnUNetTrainer.

``benchmarks/trainers.py`` with these trainers by default: same synthetic
dataset (or ``--dataset``), trainers interleaved round-robin, each iteration
timed as data loading + augmentation and ``train_step``; the "total ratio"
column minus 1 is the overhead per training iteration. Every option of
``trainers.py`` applies.

    python benchmarks/augmentation.py --iterations 1 --repeats 20 --threads 1 --clock cpu
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TRAINERS = ["nnUNetTrainer", "nnUNetTrainerIQDA", "nnUNetTrainerMaskVariants", "nnUNetTrainerTversky",
            "nnUNetTrainerGIN"]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--trainers" not in argv:
        argv += ["--trainers", *TRAINERS]
    spec = importlib.util.spec_from_file_location("benchmark_trainers", Path(__file__).with_name("trainers.py"))
    trainers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainers)
    return trainers.main(argv)


if __name__ == "__main__":
    sys.exit(main())
