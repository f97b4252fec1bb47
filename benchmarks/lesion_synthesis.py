"""Seconds per CPU training iteration with and without lesion synthesis, side by side.

``benchmarks/trainers.py``'s round-robin timing (data loading + augmentation,
then the training step) of nnUNetTrainer against nnUNetTrainerLesionSynth
(synthetic lesions in 3 of 4 samples) on the same plans; without
``--dataset``, on its synthetic two-channel (FLAIR, T1) dataset. Any option of
``benchmarks/trainers.py`` is passed on.

    python benchmarks/lesion_synthesis.py --iterations 5 --repeats 4
    python benchmarks/lesion_synthesis.py --threads 1 --clock cpu     # on a shared, loaded machine
"""
from __future__ import annotations

import sys

import trainers as trainer_benchmark  # benchmarks/trainers.py (this script's folder is on sys.path)

TRAINERS = ["nnUNetTrainer", "nnUNetTrainerLesionSynth"]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return trainer_benchmark.main(argv if "--trainers" in argv else ["--trainers", *TRAINERS, *argv])


if __name__ == "__main__":
    sys.exit(main())
