"""STAPLE consensus of binary masks (Warfield et al. 2004), by SimpleITK's STAPLEImageFilter."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def staple(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Voxelwise STAPLE probability (float32) that each voxel is foreground.

    ``masks``: two- or three-dimensional arrays of one shape (non-zero =
    foreground). SimpleITK's defaults apply (prior from the masks' mean over the
    whole array, iterations until convergence), so the result depends on the
    array's extent: crop nothing away that a caller's reference run would keep.
    """
    import SimpleITK as sitk

    images = [sitk.GetImageFromArray((np.asarray(m) != 0).astype(np.uint8)) for m in masks]
    probability = sitk.STAPLEImageFilter().Execute(images) if len(images) > 1 else \
        sitk.Cast(images[0], sitk.sitkFloat64)
    return sitk.GetArrayFromImage(probability).astype(np.float32)
