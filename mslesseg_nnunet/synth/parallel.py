"""Worker count of `mslesseg synth` (its map is :func:`mslesseg_nnunet.parallel.parallel_map`)."""
from __future__ import annotations

import os


def default_workers() -> int:
    """Two workers (the target machine has 2 cores), fewer if fewer CPUs are usable."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))
