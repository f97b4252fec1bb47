"""Run scan jobs in a small process pool with a progress bar per scan."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

from tqdm import tqdm


def default_workers() -> int:
    """Two workers (the target machine has 2 cores), fewer if fewer CPUs are usable."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def run_jobs(function: Callable, jobs: Sequence, workers: int, description: str,
             unit: str = "scan") -> list:
    """``[function(job) for job in jobs]`` in ``workers`` processes, in job order."""
    with tqdm(total=len(jobs), desc=description, unit=unit) as bar:
        if workers <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(function(job))
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = []
            for result in pool.map(function, jobs):
                results.append(result)
                bar.update()
            return results
