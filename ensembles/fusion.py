"""Streamed fusion: members are read one after another into running accumulators.

Memory holds one accumulator per group plus the few members being read in
parallel threads, whatever the number of members (STAPLE alone keeps every
member's uint8 mask: its estimate needs them all at once).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.ensembles.members import Member
from mslesseg_nnunet.postprocessing.rules import group_of
from mslesseg_nnunet.staple import staple

# STAPLE combines the members' own masks: lesion where a member's probability exceeds this.
STAPLE_MEMBER_THRESHOLD = 0.5


class RunningMean:
    """Weighted mean of arrays added one at a time, accumulated in float32.

    With unit weights it computes ``(a1 + a2 + ... + an) / n`` in the order
    given, exactly as ``nnUNetv2_ensemble`` does.
    """

    def __init__(self):
        self.total: np.ndarray | None = None
        self.weight = 0.0

    def add(self, array: np.ndarray, weight: float = 1.0) -> None:
        """Add ``array`` (may be consumed: it can become the accumulator)."""
        array = np.asarray(array, dtype=np.float32)
        if weight != 1.0:
            array = array * np.float32(weight)
        if self.total is None:
            self.total = array
        else:
            np.add(self.total, array, out=self.total)
        self.weight += float(weight)

    def mean(self) -> np.ndarray:
        return (self.total / np.float32(self.weight)).astype(np.float32, copy=False)

    value = mean


class RunningMax:
    """Voxelwise maximum (the union rule: max > t is the union of the masks at t)."""

    def __init__(self):
        self.total: np.ndarray | None = None

    def add(self, array: np.ndarray, weight: float = 1.0) -> None:
        array = np.asarray(array, dtype=np.float32)
        self.total = array if self.total is None else np.maximum(self.total, array, out=self.total)

    def value(self) -> np.ndarray:
        return self.total


class StapleVotes:
    """Members' masks (probability > ``STAPLE_MEMBER_THRESHOLD``), fused by STAPLE at the end.

    ``outside``: voxels cut away around the arrays (a cropped case) where every member
    says background; STAPLE sees them, since its prior is taken over the whole volume.
    """

    def __init__(self, outside: int = 0):
        self.masks: list[np.ndarray] = []
        self.outside = outside

    def add(self, array: np.ndarray, weight: float = 1.0) -> None:
        self.masks.append(np.asarray(array) > STAPLE_MEMBER_THRESHOLD)

    def value(self) -> np.ndarray:
        shape = self.masks[0].shape
        if not self.outside:
            return staple(self.masks).probability.astype(np.float32)
        # Voxels are independent given the global estimates: a flat row with the cut-away
        # background appended gives the whole volume's result.
        pad = np.zeros(self.outside, bool)
        rows = [np.concatenate([m.ravel(), pad])[None] for m in self.masks]
        probability = staple(rows).probability[0, :int(np.prod(shape))]
        return np.ascontiguousarray(probability.reshape(shape), dtype=np.float32)


def accumulator(rule: str, outside: int = 0):
    """A fresh accumulator of member probabilities for ``rule``."""
    if rule == "staple":
        return StapleVotes(outside)
    return RunningMax() if rule == "union" else RunningMean()


@dataclass
class CaseFusion:
    """Result of fusing one case: the mean per group and the sha256 of every input."""

    groups: dict[str, np.ndarray]
    digests: list[str] = field(default_factory=list)


def read_members(members: Sequence[Member], case: str, executor: Executor | None,
                 prefetch: int = 2) -> Iterator[tuple[Member, np.ndarray, str]]:
    """Yield ``(member, lesion probability, sha256)`` in member order, reading up to
    ``prefetch`` members ahead in ``executor`` (sequentially when it is None)."""
    if executor is None:
        for member in members:
            yield (member, *member.read(case))
        return
    pending: deque = deque()
    queue = iter(members)
    for member in queue:
        pending.append((member, executor.submit(member.read, case)))
        if len(pending) > prefetch:
            break
    while pending:
        member, future = pending.popleft()
        following = next(queue, None)
        if following is not None:
            pending.append((following, executor.submit(following.read, case)))
        yield (member, *future.result())


def fuse_case(members: Sequence[Member], weights: Sequence[float], case: str, rule: str,
              executor: Executor | None = None) -> CaseFusion:
    """Fused lesion probability per rule group for one case (weighted means, or the rule's
    combination); shapes must agree."""
    sums: dict = {}
    digests: list[str] = []
    shape = None
    for (member, array, digest), weight in zip(read_members(members, case, executor), weights):
        if shape is None:
            shape, first = array.shape, member
        elif array.shape != shape:
            raise UserError(f"{member.npz_path(case)}: probability shape {array.shape} differs from "
                            f"{shape} in {first.npz_path(case)}")
        digests.append(digest)
        if weight:
            sums.setdefault(group_of(member.kind, rule), accumulator(rule)).add(array, weight)
    return CaseFusion({name: acc.value() for name, acc in sums.items()}, digests)
