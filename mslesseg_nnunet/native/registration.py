"""Registration with SimpleITK's ``ImageRegistrationMethod``: rigid channel-to-FLAIR, and
FLAIR-to-template by a similarity fit then 12-dof affine (or the similarity's rigid part),
multi-resolution, Mattes mutual information.

Levels 4 and 2 mm run on copies resampled to 2 mm (``coarse``), so the
smoothing pyramid never touches a full volume; a last 1 mm level samples only
2% of the voxels. On the real MSLesSeg scans this last level is what brings
the template registration from about 2 mm to below 1 mm of FLIRT's result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

#: Voxel size (mm) of the copies the coarse levels run on.
METRIC_SPACING_MM = 2.0
HISTOGRAM_BINS = 32
#: (shrink factor, smoothing sigma in mm, share of voxels sampled, iterations) per level.
COARSE_LEVELS = ((2, 3.0), (1, 1.0))
COARSE_SAMPLING, COARSE_ITERATIONS = 0.25, 200
FINE_SAMPLING, FINE_ITERATIONS = 0.02, 50
SEED = 12345


@dataclass
class Registration:
    """A fitted transform (fixed -> moving physical points) and its final metric value
    (Mattes mutual information, negated by ITK: lower is better)."""

    transform: sitk.Transform
    metric: float


def coarse(image: sitk.Image, spacing: float = METRIC_SPACING_MM) -> sitk.Image:
    """``image`` smoothed and resampled to about ``spacing`` mm (same extent and direction)."""
    old = np.array(image.GetSpacing())
    factor = np.maximum(spacing / old, 1.0)
    if np.all(factor == 1.0):
        return image
    new = old * factor
    size = [max(1, int(round(n / f))) for n, f in zip(image.GetSize(), factor)]
    sigma = [max(float(np.sqrt(s ** 2 - o ** 2)) / 2.0, 1e-3) for s, o in zip(new, old)]
    smoothed = sitk.SmoothingRecursiveGaussian(image, sigma)
    origin = image.TransformContinuousIndexToPhysicalPoint([(f - 1) / 2 for f in factor])
    return sitk.Resample(smoothed, size, sitk.Transform(), sitk.sitkLinear, origin,
                         new.tolist(), image.GetDirection(), 0.0, sitk.sitkFloat32)


def _method(sampling: float, fixed_mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
    """Mattes mutual information on a random ``sampling`` share of the (masked) voxels."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(sampling, SEED)
    method.SetInterpolator(sitk.sitkLinear)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    return method


def _run(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
         fixed_mask: sitk.Image | None, levels, sampling: float, iterations: int) -> float:
    """One multi-level optimisation of ``transform`` (in place); returns the final metric."""
    method = _method(sampling, fixed_mask)
    method.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=iterations,
                                         convergenceMinimumValue=1e-6, convergenceWindowSize=10,
                                         estimateLearningRate=method.EachIteration)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([s for s, _ in levels])
    method.SetSmoothingSigmasPerLevel([g for _, g in levels])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    return float(method.GetMetricValue())


def evaluate(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
             fixed_mask: sitk.Image | None = None) -> Registration:
    """``transform`` with its metric value, sampled as at the last registration level."""
    method = _method(FINE_SAMPLING, fixed_mask)
    method.SetInitialTransform(transform)
    return Registration(transform, float(method.MetricEvaluate(fixed, moving)))


def _mask(mask: sitk.Image | None, like: sitk.Image) -> sitk.Image | None:
    if mask is None:
        return None
    return sitk.Resample(mask, like, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def register(fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform,
             fixed_mask: sitk.Image | None = None) -> Registration:
    """Optimise a copy of ``initial`` so that ``moving`` matches ``fixed``: the 2 mm levels,
    then the sparse 1 mm level. ``fixed_mask`` (uint8) restricts the metric."""
    transform = type(initial)(initial)
    small_fixed = coarse(fixed)
    _run(small_fixed, coarse(moving), transform, _mask(fixed_mask, small_fixed), COARSE_LEVELS,
         COARSE_SAMPLING, COARSE_ITERATIONS)
    metric = _run(fixed, moving, transform, fixed_mask, ((1, 0.0),), FINE_SAMPLING,
                  FINE_ITERATIONS)
    return Registration(transform, metric)


def centred(fixed: sitk.Image, moving: sitk.Image, mode: str = "GEOMETRY") -> sitk.Euler3DTransform:
    """Identity rotation with the image centres (GEOMETRY) or centres of mass (MOMENTS) aligned."""
    return sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(),
        getattr(sitk.CenteredTransformInitializerFilter, mode)))


def rigid_to(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None = None,
             mode: str = "GEOMETRY") -> Registration:
    """Rigid (6 dof) registration of ``moving`` onto ``fixed``."""
    return register(fixed, moving, centred(fixed, moving, mode), fixed_mask)


def similarity_to(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None = None,
                  mode: str = "GEOMETRY") -> Registration:
    """7-dof registration (rotation, translation, one isotropic scale) of ``moving`` onto
    ``fixed``: a brain of another size than the template is not tilted to fit it, as a rigid
    fit does (6-7 degrees of pitch for a brain 13% smaller)."""
    start = centred(fixed, moving, mode)
    similarity = sitk.Similarity3DTransform()
    similarity.SetCenter(start.GetCenter())
    similarity.SetTranslation(start.GetTranslation())
    return register(fixed, moving, similarity, fixed_mask)


def without_scale(similarity: sitk.Similarity3DTransform) -> sitk.Euler3DTransform:
    """The rigid part of ``similarity`` (its rotation and translation about its centre):
    the template's centre goes where the similarity puts it, at the brain's own size."""
    euler = sitk.Euler3DTransform()
    euler.SetCenter(similarity.GetCenter())
    euler.SetMatrix([v / similarity.GetScale() for v in similarity.GetMatrix()])
    euler.SetTranslation(similarity.GetTranslation())
    return euler


def affine_to(fixed: sitk.Image, moving: sitk.Image, start: Registration,
              fixed_mask: sitk.Image | None) -> Registration:
    """12-dof affine registration of ``moving`` onto ``fixed``, started from a rigid or
    similarity fit."""
    affine = sitk.AffineTransform(start.transform.GetMatrix(), start.transform.GetTranslation(),
                                  start.transform.GetCenter())
    return register(fixed, moving, affine, fixed_mask)
