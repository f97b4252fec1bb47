"""Template anatomy: the MNI ICBM152 2009a T1, grey- and white-matter maps shipped in
the nilearn wheel, put on the FSL MNI152 1 mm grid, and sampling of that anatomy
at the voxels of any scan grid.

nilearn's ``load_mni152_*_template`` functions read files inside the installed
wheel (``nilearn/datasets/data``); nothing is downloaded. We read the same
files the same way (scaled to 0..1 by their maximum). The 2009a template
grid (1 mm, RAS, origin -98,-134,-72) differs from the FSL grid by a flip and
integer shifts, so the resampling with linear interpolation is exact.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from mslesseg_nnunet.synth.grids import MNI_AFFINE, MNI_SHAPE, Grid


@dataclass(frozen=True)
class Template:
    """Tissue maps on the FSL MNI152 1 mm grid (float32, 0..1) and the brain mask."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray


def _to_mni_grid(img) -> np.ndarray:
    """Resample a nilearn image onto the FSL MNI152 1 mm grid (linear, zero outside).

    When the two grids differ by axis flips and integer shifts only (the case for
    the shipped templates) this is an exact copy of voxels.
    """
    data = np.asarray(img.dataobj, dtype=np.float32)
    vox = np.linalg.inv(img.affine) @ MNI_AFFINE
    linear, offset = vox[:3, :3], vox[:3, 3]
    if np.allclose(np.abs(linear), np.eye(3)) and np.allclose(offset, np.round(offset)):
        out = np.zeros(MNI_SHAPE, dtype=np.float32)
        src_idx = [int(round(o)) + int(round(linear[d, d])) * np.arange(n)
                   for d, (o, n) in enumerate(zip(offset, MNI_SHAPE))]
        ok = [(i >= 0) & (i < data.shape[d]) for d, i in enumerate(src_idx)]
        out[np.ix_(*ok)] = data[np.ix_(*[i[k] for i, k in zip(src_idx, ok)])]
        return out
    return ndi.affine_transform(data, linear, offset, output_shape=MNI_SHAPE,
                                order=1, mode="constant", cval=0.0, prefilter=False)


#: The files behind nilearn's load_mni152_template / _gm_template / _wm_template.
_NILEARN_FILES = {"t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                  "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                  "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"}


def _template_images() -> dict:
    """The T1, GM and WM template images, scaled to 0..1 as nilearn's loaders do.

    The files are read straight from the installed nilearn package (importing
    ``nilearn.datasets`` costs seconds in every worker); if a nilearn release
    renames them, nilearn's own loaders are used instead.
    """
    spec = importlib.util.find_spec("nilearn")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data" if spec else None
    if folder is not None and all((folder / f).is_file() for f in _NILEARN_FILES.values()):
        images = {}
        for key, name in _NILEARN_FILES.items():
            img = nib.load(str(folder / name))
            data = np.asarray(img.dataobj, dtype=np.float32)
            images[key] = nib.Nifti1Image(data / data.max(), img.affine)
        return images
    from nilearn.datasets import (load_mni152_gm_template, load_mni152_template,
                                  load_mni152_wm_template)
    return {"t1": load_mni152_template(), "gm": load_mni152_gm_template(),
            "wm": load_mni152_wm_template()}


@functools.lru_cache(maxsize=1)
def template() -> Template:
    """The template anatomy, loaded once per process."""
    images = _template_images()
    t1, gm, wm = (_to_mni_grid(images[k]) for k in ("t1", "gm", "wm"))
    brain = t1 > 0.05
    csf = np.where(brain, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0).astype(np.float32)
    gm *= brain
    wm *= brain
    return Template(t1=t1, gm=gm, wm=wm, csf=csf, brain=brain)


def world_coordinates(index: np.ndarray) -> np.ndarray:
    """World (MNI mm) coordinates of template voxel indices, shape (..., 3)."""
    return np.asarray(index, dtype=np.float64) @ MNI_AFFINE[:3, :3].T + MNI_AFFINE[:3, 3]


def template_coordinates(grid: Grid, grid_to_mni_world: np.ndarray,
                         displacement: np.ndarray | None = None) -> np.ndarray:
    """Template voxel coordinates (3, *grid.shape) float32 of every voxel of ``grid``.

    ``grid_to_mni_world`` (4x4) maps the grid's world coordinates to template
    (MNI) world coordinates; ``displacement`` (3, *grid.shape, template voxels)
    is added afterwards (a smooth per-patient warp).
    """
    vox = np.linalg.inv(MNI_AFFINE) @ grid_to_mni_world @ grid.affine
    axes = [np.arange(n, dtype=np.float32) for n in grid.shape]
    coords = np.empty((3, *grid.shape), dtype=np.float32)
    for d in range(3):
        coords[d] = (np.float32(vox[d, 3])
                     + np.float32(vox[d, 0]) * axes[0][:, None, None]
                     + np.float32(vox[d, 1]) * axes[1][None, :, None]
                     + np.float32(vox[d, 2]) * axes[2][None, None, :])
        if displacement is not None:
            coords[d] += displacement[d]
    return coords


def sample(volume: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    """Values of a template-space ``volume`` at ``coords`` (zero outside), float32."""
    return ndi.map_coordinates(volume, coords, order=order, mode="constant", cval=0.0,
                               prefilter=False, output=np.float32)


#: Centre (MNI mm) and extent (mm, 1 sigma) of the lateral ventricles' neighbourhood.
_VENTRICLE_CENTER = np.array([0.0, -8.0, 14.0])
_VENTRICLE_SIGMA = np.array([18.0, 30.0, 16.0])


def expand_ventricles(coords: np.ndarray, amount: float) -> None:
    """Enlarge the ventricles (atrophy) by magnifying the centre of the brain, in place.

    ``coords`` are template voxel coordinates of scan voxels; each is pulled
    towards the ventricle centre by ``amount`` times a Gaussian weight, so the
    template is sampled closer in and the central structures look larger
    (magnification about ``1 / (1 - amount)`` at the centre, none far away).
    """
    if amount <= 0:
        return
    center = (np.linalg.inv(MNI_AFFINE) @ np.append(_VENTRICLE_CENTER, 1.0))[:3]
    offset = [coords[d] - np.float32(center[d]) for d in range(3)]
    weight = np.exp(-0.5 * sum((o / np.float32(s)) ** 2
                               for o, s in zip(offset, _VENTRICLE_SIGMA)))
    weight *= np.float32(amount)
    for d in range(3):
        coords[d] -= weight * offset[d]
