"""Our chunked selective scan against the sequential reference, at sequence length 4096.

Both get the same inputs: the scan arguments that a freshly initialised Mamba
block (d_state 16, expand 2; softplus time steps with bias, D skip, z gate)
computes from random tokens. The two take turns for ``--seconds`` each and
the fastest call of each is kept (to damp noise from other processes);
forward, and forward + backward. Reported: the speed ratio reference / ours and the
maximum absolute difference of the outputs. On a CUDA machine with
``mamba_ssm`` installed the kernel is compared too (max abs difference and times)::

    python benchmarks/selective_scan.py [--length 4096] [--batch 1] [--d-inner 32] [--seconds 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from mslesseg_nnunet.networks.mamba import D_STATE, EXPAND, Mamba
from mslesseg_nnunet.networks.selective_scan import selective_scan, selective_scan_sequential


def make_inputs(batch: int, d_inner: int, length: int, device: str, requires_grad: bool) -> dict:
    """The scan arguments of a freshly initialised Mamba block (d_model = d_inner / 2) on random tokens."""
    torch.manual_seed(0)
    block = Mamba(d_inner // EXPAND)
    with torch.no_grad():
        inputs = block.scan_inputs(torch.randn(batch, length, d_inner // EXPAND))
    return {k: v.detach().to(device).requires_grad_(requires_grad) for k, v in inputs.items()}


def fastest_times(functions: dict, seconds: float, turn_seconds: float = 0.1) -> dict:
    """Fastest (wall, process CPU) seconds of a call of each function, timed side by side.

    The functions take turns (one turn of ``turn_seconds`` each as a warm-up,
    untimed) and each turn calls one function repeatedly for about
    ``turn_seconds`` (at least once), until each has run for ``seconds``. Turns
    expose all functions to the same machine conditions, and equal time
    budgets give the fast function as many chances to run undisturbed as the
    slow one. With one thread the CPU time is the compute time even when other
    processes share the cores; the wall time includes waiting for them.
    """
    _take_turns(functions, turn_seconds, turn_seconds)
    return _take_turns(functions, seconds, turn_seconds)


def _take_turns(functions: dict, seconds: float, turn_seconds: float) -> dict:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)  # CUDA runs asynchronously
    fastest = {name: (math.inf, math.inf) for name in functions}
    spent = dict.fromkeys(functions, 0.0)
    while min(spent.values()) < seconds:
        for name, fn in functions.items():
            turn_end = time.perf_counter() + turn_seconds
            while True:
                sync()
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                fn()
                sync()
                wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
                spent[name] += wall
                fastest[name] = (min(fastest[name][0], wall), min(fastest[name][1], cpu))
                if time.perf_counter() >= turn_end:
                    break
    return fastest


def run(scan, inputs: dict, backward: bool):
    out = scan(**inputs, delta_softplus=True)
    if backward:
        out.sum().backward()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--d-inner", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="time each implementation for this long (fastest call kept)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 gives stable timings on a shared machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    print(f"shape: batch {args.batch}, d_inner {args.d_inner}, d_state {D_STATE}, length {args.length}")
    for backward in (False, True):
        inputs = make_inputs(args.batch, args.d_inner, args.length, args.device, backward)
        with torch.set_grad_enabled(backward):
            times = fastest_times({"ours": lambda: run(selective_scan, inputs, backward),
                                   "sequential": lambda: run(selective_scan_sequential, inputs, backward)},
                                  args.seconds)
            ours, reference = times["ours"], times["sequential"]
            diff = (run(selective_scan, inputs, False) - run(selective_scan_sequential, inputs, False)).abs().max()
        label = "forward + backward" if backward else "forward"
        for kind, i in (("wall", 0), ("cpu", 1)):
            print(f"{label} ({kind}): ours {ours[i] * 1e3:.1f} ms, sequential {reference[i] * 1e3:.1f} ms, "
                  f"speed-up {reference[i] / ours[i]:.1f}x")
        print(f"{label}: max abs difference {diff.item():.2e}")
    if args.device.startswith("cuda"):
        compare_with_kernel(args)


def compare_with_kernel(args) -> None:
    """Max abs difference to ``mamba_ssm``'s CUDA kernel (when installed)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        print("mamba_ssm not installed: kernel comparison skipped")
        return
    inputs = make_inputs(args.batch, args.d_inner, args.length, args.device, False)
    with torch.no_grad():
        diff = (run(selective_scan, inputs, False) - run(selective_scan_fn, inputs, False)).abs().max()
    print(f"mamba_ssm kernel: max abs difference {diff.item():.2e}")
    for backward in (False, True):
        inputs = make_inputs(args.batch, args.d_inner, args.length, args.device, backward)
        with torch.set_grad_enabled(backward):
            times = fastest_times({"ours": lambda: run(selective_scan, inputs, backward),
                                   "kernel": lambda: run(selective_scan_fn, inputs, backward)}, args.seconds)
            ours, kernel = times["ours"][0], times["kernel"][0]
        label = "forward + backward" if backward else "forward"
        print(f"{label} (wall): ours {ours * 1e3:.2f} ms, mamba_ssm kernel {kernel * 1e3:.2f} ms, "
              f"ours / kernel {ours / kernel:.1f}x")


if __name__ == "__main__":
    main()
