"""Offline brain extraction on the MSLesSeg grid: the template's brain after registration,
refined on the FLAIR intensities.

The template brain is eroded to a core that is always kept and dilated to
the largest extent allowed; in the band between them a voxel stays brain when
its FLAIR is above ``DARK_RATIO`` times the core median (outer CSF, skull and
background are dark on FLAIR; the bright scalp lies outside the band). Holes
are filled and the largest connected piece kept.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mslesseg_nnunet.components import label_components
from mslesseg_nnunet.synth.anatomy import template

CORE_EROSION_MM = 6
BAND_DILATION_MM = 3
DARK_RATIO = 0.35


def brain_mask(flair: np.ndarray) -> np.ndarray:
    """Brain mask (bool) of a FLAIR already on the MSLesSeg grid."""
    brain = template().brain
    core = ndi.binary_erosion(brain, iterations=CORE_EROSION_MM)
    extent = ndi.binary_dilation(brain, iterations=BAND_DILATION_MM)
    threshold = DARK_RATIO * float(np.median(flair[core]))
    mask = core | (extent & (flair > threshold))
    mask = ndi.binary_fill_holes(ndi.binary_closing(mask, iterations=2) | core)
    labels, n = label_components(mask, 6)
    if n > 1:
        mask = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return mask
