"""Where MS lesions occur: lesion sites on the template (1 mm FSL MNI152 grid).

Sites follow the usual radiological description: periventricular (touching or
within a few mm of the lateral ventricles), deep white matter, juxtacortical
(white matter next to cortex) and infratentorial (brainstem, cerebellar
peduncles and white matter).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from mslesseg_nnunet.synth.anatomy import template, world_coordinates

#: Lesion sites and how often a lesion is placed in each.
SITE_WEIGHTS = {"periventricular": 0.45, "deep": 0.30, "juxtacortical": 0.15,
                "infratentorial": 0.10}


@dataclass(frozen=True)
class Regions:
    """Template-space maps used to place and shape lesions."""

    ventricle_distance: np.ndarray   # mm to the nearest ventricle voxel (float32)
    ventricle_band: np.ndarray       # 1 next to the ventricles, fading over ~3 mm in WM
    sites: dict                      # site name -> flat voxel indices (int64)


def _world_axes(shape) -> list[np.ndarray]:
    """World x, y, z coordinate of each index along the three template axes."""
    return [world_coordinates(np.stack([np.arange(n) if a == d else np.zeros(n)
                                        for a in range(3)], axis=1))[:, d]
            for d, n in enumerate(shape)]


def _ventricles(csf: np.ndarray) -> np.ndarray:
    """Lateral and third ventricles: CSF inside a central box of MNI space."""
    x, y, z = _world_axes(csf.shape)
    box = ((np.abs(x) < 30)[:, None, None] & ((y > -48) & (y < 32))[None, :, None]
           & ((z > -12) & (z < 36))[None, None, :])
    vent = (csf > 0.5) & box
    labels, n = ndi.label(vent)
    if n == 0:
        return vent
    sizes = np.bincount(labels.ravel())[1:]
    return np.isin(labels, 1 + np.flatnonzero(sizes >= 200))


def _distance_to(mask: np.ndarray, margin: int = 30) -> np.ndarray:
    """Euclidean distance (mm) to ``mask``, computed in its bounding box + ``margin``."""
    dist = np.full(mask.shape, 1e3, dtype=np.float32)
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    dist[box] = ndi.distance_transform_edt(~mask[box])
    return dist


@functools.lru_cache(maxsize=1)
def regions() -> Regions:
    """Lesion-site maps, computed once per process."""
    tpl = template()
    vent = _ventricles(tpl.csf)
    dvent = _distance_to(vent)
    x, y, z = _world_axes(tpl.wm.shape)
    zz = z[None, None, :]
    infra_box = (zz < -20) & (y[None, :, None] < -22)
    supra = ~infra_box
    wm, gm = tpl.wm, tpl.gm
    sites = {
        "periventricular": (wm > 0.6) & (dvent >= 1) & (dvent <= 6) & supra,
        "deep": (wm > 0.85) & (dvent > 6) & (dvent < 30) & supra & (zz > -15),
        "juxtacortical": (wm > 0.3) & (wm < 0.65) & (gm > 0.3) & (dvent > 12) & supra
                         & (zz > -10),
        "infratentorial": (wm > 0.6) & infra_box,
    }
    band = np.clip((4.0 - dvent) / 3.0, 0.0, 1.0) * np.clip(wm * 1.5, 0.0, 1.0)
    return Regions(ventricle_distance=dvent, ventricle_band=band.astype(np.float32),
                   sites={k: np.flatnonzero(v) for k, v in sites.items()})
