"""Seconds per CPU training iteration with and without lesion synthesis, side by side.

Default: ``benchmarks/trainers.py``'s round-robin timing (data loading +
augmentation, then the training step) of nnUNetTrainer against
nnUNetTrainerLesionSynth (synthetic lesions in 3 of 4 samples) on the same
plans; without ``--dataset``, on its synthetic two-channel (FLAIR, T1)
dataset. Any option of ``benchmarks/trainers.py`` is passed on.

``--augmentation-patch X Y Z``: instead, seconds per sample of nnU-Net's
training transforms alone, without and with lesion synthesis (every sample
synthetic: the worst case), on a z-scored synthetic FLAIR/T1/T2 head of that
patch size (nnU-Net's GPU patches are about 128^3; augmentation runs on CPU
workers there).

    python benchmarks/lesion_synthesis.py --iterations 5 --repeats 4
    python benchmarks/lesion_synthesis.py --threads 1 --clock cpu     # on a shared, loaded machine
    python benchmarks/lesion_synthesis.py --augmentation-patch 128 128 128 --repeats 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import trainers as trainer_benchmark  # benchmarks/trainers.py (this script's folder is on sys.path)

TRAINERS = ["nnUNetTrainer", "nnUNetTrainerLesionSynth"]


def sample(patch: tuple[int, ...]):
    """A z-scored 3-channel head (FLAIR-, T1-, T2-like) with blob lesions, and its label."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_nnunet import blob_case

    image, mask = blob_case(np.random.default_rng(0), patch)
    image = np.concatenate([image, image[:1] * 0.8 + 40.0 * (image[:1] > 50)])
    image = (image - image.mean(axis=(1, 2, 3), keepdims=True)) / image.std(axis=(1, 2, 3), keepdims=True)
    return image.astype(np.float32), mask[None].astype(np.int16)


def augmentation_seconds(patch: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Mean seconds per sample (the expected cost: nnU-Net's transforms are random) of nnU-Net's
    training transforms, without and with lesion synthesis, after one untimed sample each; sample
    ``i`` of both pipelines gets the same choice of which of nnU-Net's random transforms apply."""
    import numpy as np
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from mslesseg_nnunet.lesion_synthesis import LesionSynthesisTransform, channel_contrasts
    from mslesseg_nnunet.trainer_mixins import insert_after_spatial

    def pipeline(with_lesions: bool):
        compose = nnUNetTrainer.get_training_transforms(patch, (-np.pi / 6, np.pi / 6), None, (0, 1, 2), False,
                                                        foreground_labels=[1])
        if with_lesions:
            insert_after_spatial(compose, LesionSynthesisTransform(channel_contrasts(["FLAIR", "T1", "T2"]),
                                                                   probability=1.0))
        return compose

    pipelines = {"nnU-Net transforms": pipeline(False), "+ lesion synthesis (every sample)": pipeline(True)}
    image, seg = sample(patch)
    times = {name: [] for name in pipelines}
    for compose in pipelines.values():
        compose(image=torch.from_numpy(image.copy()), segmentation=torch.from_numpy(seg.copy()))
    for repeat in range(repeats):
        for name, compose in pipelines.items():
            torch.manual_seed(repeat)   # nnU-Net draws which transforms apply with torch
            np.random.seed(repeat)
            t0 = time.process_time()
            compose(image=torch.from_numpy(image.copy()), segmentation=torch.from_numpy(seg.copy()))
            times[name].append(time.process_time() - t0)
    return {name: statistics.mean(t) for name, t in times.items()}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--augmentation-patch", type=int, nargs=3)
    p.add_argument("--repeats", type=int, default=20)
    args, rest = p.parse_known_args(argv)
    if args.augmentation_patch is None:
        return trainer_benchmark.main(argv if "--trainers" in argv else ["--trainers", *TRAINERS, *argv])
    import torch

    torch.set_num_threads(1)
    seconds = augmentation_seconds(tuple(args.augmentation_patch), args.repeats)
    reference = next(iter(seconds.values()))
    print(f"\npatch {'x'.join(map(str, args.augmentation_patch))}, 3 channels, 1 torch thread, process CPU time, "
          f"mean of {args.repeats} samples\n\n| pipeline | s/sample | ratio |\n|---|---|---|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {value / reference:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
