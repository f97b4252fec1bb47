"""The MadSeg fusion rule for multi-size (MSL) and distance-based (DBL) ensembles.

``p = mix * p_MSL + (1 - mix) * p_DBL`` is thresholded; components of the
fused mask with at most ``volume_threshold`` voxels survive only if their
maximum fused probability reaches ``prob_threshold``; DBL components with more
than ``volume_threshold`` voxels are kept whole; the output is the union.
"""
from __future__ import annotations

import numpy as np

from mslesseg_nnunet.components import LESION_CONNECTIVITY
from mslesseg_nnunet.postprocessing.components import Components, find_components
from mslesseg_nnunet.postprocessing.threshold import binarize


def mix_probabilities(p_msl: np.ndarray, p_dbl: np.ndarray, mix: float) -> np.ndarray:
    """``mix * p_msl + (1 - mix) * p_dbl`` as float32."""
    return (np.float32(mix) * p_msl + np.float32(1.0 - mix) * p_dbl).astype(np.float32, copy=False)


def madseg_select(fused: Components, dbl: Components, volume_threshold: float,
                  prob_threshold: float) -> np.ndarray:
    """The MadSeg union from the components of the thresholded fused and DBL maps."""
    kept = fused.select((fused.sizes > volume_threshold) | fused.confident(prob_threshold))
    return kept | dbl.select(dbl.sizes > volume_threshold)


def madseg_mask(p_msl: np.ndarray, p_dbl: np.ndarray, mix: float = 0.5, threshold: float = 0.5,
                volume_threshold: float = 1000, prob_threshold: float = 0.7,
                connectivity: int = LESION_CONNECTIVITY) -> np.ndarray:
    """Binary mask by the MadSeg rule (sizes in voxels; see the module docstring)."""
    fused = mix_probabilities(p_msl, p_dbl, mix)
    return madseg_select(find_components(binarize(fused, threshold), fused, connectivity),
                         find_components(binarize(p_dbl, threshold), p_dbl, connectivity),
                         volume_threshold, prob_threshold)
