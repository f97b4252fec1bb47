"""One function over many items, in a process pool when asked, with a tqdm progress bar."""
from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Callable, Sequence

from tqdm import tqdm


def parallel_map(fn: Callable, items: Sequence, workers: int = 1, desc: str = "",
                 progress: bool = True, unit: str = "case") -> list:
    """``[fn(x) for x in items]``, in order, over ``workers`` processes (1: in this process).

    The first exception raised by any item cancels the remaining items and is
    re-raised here; the bar is then cleared so that the error message stands alone.
    """
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(items) <= 1:
            results = []
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=min(workers, len(items))) as pool:
            futures = [pool.submit(fn, item) for item in items]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                bar.update(len(done))
                failed = next((f for f in done if f.exception() is not None), None)
                if failed is not None:
                    for future in pending:
                        future.cancel()
                    raise failed.exception()
            return [f.result() for f in futures]
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


class Unpacked:
    """``fn(*item)`` for an item tuple; picklable when ``fn`` is a module-level function."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, item: tuple):
        return self.fn(*item)
