"""N4 bias-field correction (SimpleITK's ``N4BiasFieldCorrectionImageFilter``).

The field is fitted on a shrunken copy inside an Otsu head mask, as the N4
paper and ANTs do for speed, then evaluated at full resolution and divided out.
"""
from __future__ import annotations

import SimpleITK as sitk

#: Shrink factor of the fitting image and iterations per fitting level (ANTs' defaults: 4, 50x4).
N4_SHRINK = 4
N4_ITERATIONS = (50, 50, 50, 50)


def n4_correct(image: sitk.Image, shrink: int = N4_SHRINK,
               iterations: tuple[int, ...] = N4_ITERATIONS) -> sitk.Image:
    """``image`` divided by its N4 bias field (float32); voxels <= 0 are kept at 0."""
    image = sitk.Threshold(image, 0.0, float("inf"), 0.0)
    small = sitk.Shrink(image, [shrink] * 3)
    mask = sitk.OtsuThreshold(small, 0, 1, 200)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.Execute(small, mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)
