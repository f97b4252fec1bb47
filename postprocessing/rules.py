"""Apply a fusion rule and the postprocessing chain to per-group probability maps.

Groups are the fused member probabilities that a rule needs: one group
``"all"`` for the weighted mean, the union (maximum) and STAPLE, groups
``"msl"`` and ``"dbl"`` (means) for MadSeg.
``Segmenter`` caches the fused maps and their thresholded components, so
that many parameter settings of one case (the grid search) share the work.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.postprocessing.components import (Components, find_components, keep_larger_than,
                                                       larger_than, size_in_voxels)
from mslesseg_nnunet.postprocessing.madseg import madseg_select, mix_probabilities
from mslesseg_nnunet.postprocessing.params import PostprocessingParams
from mslesseg_nnunet.postprocessing.threshold import binarize

MADSEG_GROUPS = ("msl", "dbl")


def group_of(kind: str, rule: str) -> str:
    """The group a member of labelling ``kind`` is averaged into under ``rule``."""
    if rule != "madseg":
        return "all"
    if kind not in MADSEG_GROUPS:
        raise UserError(f"--rule madseg: needs members with msl or dbl labelling, got a {kind!r} member")
    return kind


def check_groups(groups: Sequence[str], rule: str) -> None:
    """Raise UserError when the groups present cannot feed ``rule``."""
    needed = MADSEG_GROUPS if rule == "madseg" else ("all",)
    missing = [g for g in needed if g not in groups]
    if missing:
        raise UserError(f"--rule {rule}: no {' or '.join(missing)} members given")


class Segmenter:
    """Masks of one case for any parameter setting, reusing fused maps and components."""

    def __init__(self, groups: dict[str, np.ndarray], spacing: Sequence[float]):
        self.groups = groups
        self.spacing = tuple(float(s) for s in spacing)
        self._fused = lru_cache(maxsize=None)(self._fused_uncached)
        self._components = lru_cache(maxsize=None)(self._components_uncached)

    def fused(self, params: PostprocessingParams) -> np.ndarray:
        """The single probability map the rule thresholds."""
        check_groups(list(self.groups), params.rule)
        return self._fused(self._source(params))

    def mask(self, params: PostprocessingParams) -> np.ndarray:
        """Binary lesion mask (bool) by ``params``."""
        check_groups(list(self.groups), params.rule)
        source = self._source(params)
        found = self._components(source, params.threshold, params.connectivity)
        if params.rule == "madseg":
            volume = size_in_voxels(params.volume_threshold, params.size_unit, self.spacing)
            dbl = self._components(("dbl", None), params.threshold, params.connectivity)
            return keep_larger_than(madseg_select(found, dbl, volume, params.prob_threshold),
                                    params.min_size, params.size_unit, self.spacing,
                                    params.connectivity)
        limit = size_in_voxels(params.min_size, params.size_unit, self.spacing)
        return found.select(larger_than(found.sizes, limit)) if limit > 0 else found.labels > 0

    @staticmethod
    def _source(params: PostprocessingParams) -> tuple:
        return ("madseg", params.mix) if params.rule == "madseg" else ("all", None)

    def _fused_uncached(self, source: tuple) -> np.ndarray:
        name, mix = source
        if name == "madseg":
            return mix_probabilities(self.groups["msl"], self.groups["dbl"], mix)
        return self.groups[name]

    def _components_uncached(self, source: tuple, threshold: float, connectivity: int) -> Components:
        probability = self._fused(source)
        return find_components(binarize(probability, threshold), probability, connectivity)


def segment(groups: dict[str, np.ndarray], params: PostprocessingParams,
            spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The fused probability map and the binary lesion mask (bool) from group probabilities,
    by ``params`` (the fused map is computed once)."""
    segmenter = Segmenter(groups, spacing)
    return segmenter.fused(params), segmenter.mask(params)
