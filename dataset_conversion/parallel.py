"""Run one function over many items in a process pool, with a progress bar."""
from __future__ import annotations

import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Callable, Sequence

from tqdm import tqdm

from mslesseg_nnunet.errors import UserError


def default_workers() -> int:
    """Worker processes used when ``--workers`` is not given: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def check_workers(workers: int | None) -> int:
    """``workers`` as a positive int (None -> default), else raise UserError."""
    if workers is None:
        return default_workers()
    if int(workers) < 1:
        raise UserError(f"--workers: must be at least 1, got {workers}")
    return int(workers)


def map_with_progress(func: Callable, items: Sequence[tuple], workers: int, desc: str) -> list:
    """``[func(*item) for item in items]``, in order, over ``workers`` processes.

    The first exception raised by any item cancels the remaining items and is
    re-raised here. With one worker everything runs in this process.
    """
    bar = tqdm(total=len(items), desc=desc, unit="scan", dynamic_ncols=True)
    with bar:
        if workers == 1 or len(items) <= 1:
            results = []
            for item in items:
                results.append(func(*item))
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=min(workers, len(items))) as pool:
            futures = [pool.submit(func, *item) for item in items]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                bar.update(len(done))
                failed = next((f for f in done if f.exception() is not None), None)
                if failed is not None:
                    for f in pending:
                        f.cancel()
                    raise failed.exception()
            return [f.result() for f in futures]
