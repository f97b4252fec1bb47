"""Image contrasts: tissue and lesion intensities per modality and per scan,
and the acquisition effects (bias field, slice-thickness blur, noise).

Intensities are relative to normal-appearing white matter (WM = 1) and then
scaled to a per-scan signal level; the ranges span the real MSLesSeg scans
(e.g. FLAIR WM about 130 to 650, T1 WM about 530 to 870, lesions 1.6 to 1.8 times
WM on their FLAIR) and the 3D FLAIR of 3D-MR-MS (grey matter clearly brighter
than white matter, lesions only 1.2 to 1.4 times WM). ``tests/test_synth_real_ranges.py``
measures those ratios on the real scans and on the ends of these ranges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from mslesseg_nnunet.synth.anatomy import Template
from mslesseg_nnunet.synth.fields import smooth_field
from mslesseg_nnunet.synth.grids import Grid

#: (low, high) of the WM signal level per modality before the scanner's scale.
_WM_LEVEL = {"FLAIR": (110.0, 600.0), "T1": (420.0, 800.0), "T2": (160.0, 520.0)}
#: (low, high) of GM and CSF intensity relative to WM.
GM_RATIO = {"FLAIR": (1.0, 1.3), "T1": (0.6, 0.92), "T2": (1.15, 1.4)}
#: (low, high) of a FLAIR's lesion conspicuity (the share of each lesion's own contrast the
#: scan shows, mimics alike): full on 2D (thick-slice) FLAIR, down to 0.4 on 3D FLAIR.
FLAIR_LESION_SCALE = {"2d": (0.8, 1.0), "3d": (0.4, 1.0)}
#: (low, high) of the std of the log bias field left after the releases' bias correction.
BIAS_STRENGTH = (0.02, 0.25)
#: Template T1 value in white matter (its CSF is ~0.3, grey matter ~0.65).
_TEMPLATE_T1_WM = 0.87
_CSF_RATIO = {"FLAIR": (0.2, 0.5), "T1": (0.3, 0.45), "T2": (2.2, 3.4)}


@dataclass(frozen=True)
class Contrast:
    """How one scan renders one modality."""

    modality: str
    wm_level: float
    gm_ratio: float
    csf_ratio: float
    periventricular_ratio: float    # mild FLAIR/T2 hyperintensity along the ventricles
    lesion_scale: float             # multiplies every lesion's (and mimic's) relative change
    bias_strength: float            # std of the log bias field
    noise: float                    # white-noise std relative to WM
    texture: float                  # spatially correlated noise std relative to WM
    slice_thickness: float          # mm, blurs along the third axis


def sample_contrast(rng: np.random.Generator, modality: str, intensity_scale: float,
                    slice_thickness: float) -> Contrast:
    """A random contrast for one scan of ``modality``; a FLAIR with thin slices (a 3D
    acquisition) may show its lesions much fainter than a 2D one."""
    lo, hi = _WM_LEVEL[modality]
    level = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * intensity_scale
    pv = rng.uniform(1.05, 1.2) if modality in ("FLAIR", "T2") else 1.0
    look = "3d" if slice_thickness < 2.0 else "2d"
    scale = rng.uniform(*FLAIR_LESION_SCALE[look]) if modality == "FLAIR" else 1.0
    return Contrast(modality=modality, wm_level=level, gm_ratio=rng.uniform(*GM_RATIO[modality]),
                    csf_ratio=rng.uniform(*_CSF_RATIO[modality]), periventricular_ratio=pv,
                    lesion_scale=scale, bias_strength=rng.uniform(*BIAS_STRENGTH),
                    noise=rng.uniform(0.01, 0.03),
                    texture=rng.uniform(0.02, 0.045), slice_thickness=slice_thickness)


def compose(tpl: Template, contrast: Contrast, lesion_delta: np.ndarray,
            ventricle_band: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    """Noise-free image of one modality on the template grid (WM = ``wm_level``).

    ``lesion_delta`` is the relative change made by lesions and mimics;
    ``extra`` (optional) adds tissue outside the brain (relative units).
    """
    image = tpl.wm + np.float32(contrast.gm_ratio) * tpl.gm + np.float32(contrast.csf_ratio) * tpl.csf
    if contrast.modality == "T1":
        # The template is itself a T1 image: borrow its detail (deep grey matter, sulci).
        image = 0.5 * image + np.float32(0.5 / _TEMPLATE_T1_WM) * tpl.t1
    image += np.float32(contrast.periventricular_ratio - 1.0) * ventricle_band
    image *= 1.0 + np.float32(contrast.lesion_scale) * lesion_delta
    if extra is not None:
        image += extra
    image *= np.float32(contrast.wm_level)
    return image


def texture_field(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Spatially correlated unit-variance noise (~1.2 mm), shared by a scan's modalities."""
    texture = ndi.gaussian_filter(rng.standard_normal(grid.shape, dtype=np.float32),
                                  1.2 / grid.spacing)
    return texture / np.float32(max(float(texture[::3, ::3, ::3].std()), 1e-6))


def bias_field(grid: Grid, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A multiplicative bias field: exp of a smooth field (wavelengths 120-400 mm) of std
    ``strength``."""
    return np.exp(np.float32(strength) * smooth_field(grid, rng, (120.0, 400.0), 4))


def acquire(image: np.ndarray, grid: Grid, contrast: Contrast, rng: np.random.Generator,
            texture: np.ndarray) -> np.ndarray:
    """Apply bias field, slice-thickness blur and noise to an image sampled on ``grid``."""
    spacing = grid.spacing
    image = image * bias_field(grid, rng, contrast.bias_strength)
    # Blur to the acquired resolution (in-plane ~1 mm, through-plane the slice thickness)
    # plus the smoothing of the resampling to the template (~1 mm).
    fwhm = np.hypot(np.array([1.0, 1.0, contrast.slice_thickness]), 1.0)
    sigma = np.sqrt(np.maximum(fwhm ** 2 - spacing ** 2, 0.0)) / 2.355 / spacing
    if np.any(sigma > 0.05):
        image = ndi.gaussian_filter(image, sigma, mode="constant")
    level = np.float32(contrast.wm_level)
    tissue = image > 0
    values = image[tissue]
    noise = (np.float32(contrast.texture) * texture[tissue]
             + np.float32(contrast.noise) * rng.standard_normal(values.size, dtype=np.float32))
    image[tissue] = values + noise * np.minimum(values, level)
    return image
