"""Worker counts of the converters, and their map over scans (the shared parallel map)."""
from __future__ import annotations

import os
from typing import Callable, Sequence

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.parallel import Unpacked, parallel_map


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
    """``[func(*item) for item in items]``, in order, over ``workers`` processes (see
    :func:`mslesseg_nnunet.parallel.parallel_map`)."""
    return parallel_map(Unpacked(func), items, workers, desc, unit="scan")
