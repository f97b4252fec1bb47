"""Seconds per training iteration of our trainers against nnUNetTrainer, on the same plans.

Each trainer is built by the stock nnU-Net lookup (``nnUNet_extTrainer``) and
started as ``nnUNetv2_train`` would (``on_train_start``); then, interleaving
the trainers round-robin to share machine noise, we time ``next(dataloader)``
(data loading + augmentation, in-process) and ``train_step`` (forward, loss,
backward, optimiser step). Medians per trainer and ratios to nnUNetTrainer are
printed as a Markdown table.

Without ``--dataset`` a synthetic dataset (64x80x64 voxels, 2 channels) is
built, planned and preprocessed by stock nnU-Net and shrunk by
``mslesseg cpu-plans`` in a temporary folder (needs the repository's tests/).

    python benchmarks/trainers.py --iterations 5 --repeats 4
    python benchmarks/trainers.py --threads 1 --clock cpu     # on a shared, loaded machine
    python benchmarks/trainers.py --dataset 101 --plans nnUNetPlans --device cuda
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mslesseg_nnunet.trainer_catalog import our_trainer_names

SYNTHETIC_SHAPE = (64, 80, 64)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", help="preprocessed dataset id/name (default: build a synthetic one)")
    p.add_argument("--plans", default="nnUNetPlansCPU", help="plans identifier (default nnUNetPlansCPU)")
    p.add_argument("--configuration", default="3d_fullres")
    p.add_argument("--trainers", nargs="+", default=None,
                   help="trainer names, the first the reference (default: nnUNetTrainer and every "
                        "trainer of `mslesseg trainers` but the Short twins)")
    p.add_argument("--iterations", type=int, default=5, help="timed iterations per trainer per round")
    p.add_argument("--repeats", type=int, default=4, help="round-robin rounds")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per trainer")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: process CPU time, robust on a shared machine (use with --threads 1)")
    args = p.parse_args(argv)
    args.trainers = args.trainers or ["nnUNetTrainer", *(n for n in our_trainer_names()
                                                          if not n.endswith("Short"))]
    return args


def synthetic_dataset(root: Path) -> str:
    """Build, plan, preprocess and CPU-shrink the synthetic binary dataset; return its id."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_nnunet import DATASET_IDS, build_tiny_nnunet

    tiny = build_tiny_nnunet(root, labellings=("binary",), shape=SYNTHETIC_SHAPE)
    os.environ.update({k: tiny.env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed")})
    return str(DATASET_IDS["binary"])


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def settle_sys_modules() -> None:
    """Read ``__file__``/``__path__`` of every loaded module until no new module appears.

    nnU-Net 2.8.1's trainer lookup iterates ``sys.modules`` while reading these
    attributes; with ``mamba_ssm`` loaded (it pulls in lazily importing modules)
    such a read can import, and the lookup fails with "dictionary changed size
    during iteration" (seen on a GPU machine from the fifth trainer on).
    """
    count = -1
    while count != len(sys.modules):
        count = len(sys.modules)
        for module in list(sys.modules.values()):
            for attr in ("__file__", "__path__"):
                try:
                    getattr(module, attr, None)
                except Exception:
                    pass


def start_trainer(name, args, device):
    """A trainer as nnUNetv2_train builds it, with its dataloaders running."""
    from nnunetv2.run.run_training import get_trainer_from_args

    settle_sys_modules()
    trainer = get_trainer_from_args(args.dataset, args.configuration, 0, name, args.plans, device=device)
    trainer.on_train_start()
    trainer.on_train_epoch_start()
    return trainer


def timed_iteration(trainer, device, clock) -> tuple[float, float]:
    """(data seconds, step seconds) of one training iteration."""
    sync(device)
    t0 = clock()
    batch = next(trainer.dataloader_train)
    t1 = clock()
    trainer.train_step(batch)
    sync(device)
    return t1 - t0, clock() - t1


def benchmark(args) -> dict[str, dict[str, list[float]]]:
    import torch

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainers = {name: start_trainer(name, args, device) for name in args.trainers}
    times = {name: {"data": [], "step": []} for name in trainers}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for trainer in trainers.values():
        for _ in range(args.warmup):
            timed_iteration(trainer, device, clock)
    for _ in range(args.repeats):
        for name, trainer in trainers.items():
            for _ in range(args.iterations):
                data, step = timed_iteration(trainer, device, clock)
                times[name]["data"].append(data)
                times[name]["step"].append(step)
    return times


def markdown(times: dict, reference: str) -> str:
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    ref = med[reference]
    rows = ["| trainer | step s/it | data s/it | total s/it | step ratio | total ratio |",
            "|---|---|---|---|---|---|"]
    for name, m in med.items():
        total, ref_total = m["data"] + m["step"], ref["data"] + ref["step"]
        rows.append(f"| {name} | {m['step']:.3f} | {m['data']:.3f} | {total:.3f} | "
                    f"{m['step'] / ref['step']:.2f}x | {total / ref_total:.2f}x |")
    return "\n".join(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("nnUNet_n_proc_DA", "0")
    os.environ.setdefault("nnUNet_compile", "false")
    from mslesseg_nnunet.nnunet_env import trainers_dir

    os.environ["nnUNet_extTrainer"] = str(trainers_dir())
    with tempfile.TemporaryDirectory(prefix="mslesseg-bench-") as tmp:
        if args.dataset is None:
            args.dataset = synthetic_dataset(Path(tmp) / "data")
        os.environ["nnUNet_results"] = str(Path(tmp) / "results")
        times = benchmark(args)
    import torch

    n = args.iterations * args.repeats
    print(f"\n{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.clock} clock, plans {args.plans}, {n} timed iterations per trainer (medians)\n")
    print(markdown(times, args.trainers[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
