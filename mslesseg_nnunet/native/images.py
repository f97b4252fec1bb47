"""Between nibabel volumes (RAS affine, file axis order) and SimpleITK images (LPS).

Inputs are read with nibabel, as everywhere else in the project, so the native
geometry used here is exactly the one ``nifti.read_volume`` reports.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import read_header, read_volume
from mslesseg_nnunet.synth.grids import MNI_AFFINE, MNI_SHAPE

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A float32 SimpleITK image of ``data`` (file axis order) placed by the RAS ``affine``."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, np.float32).T))
    linear = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (linear / spacing).ravel()])
    image.SetOrigin([float(v) for v in _RAS_TO_LPS @ affine[:3, 3]])
    return image


def to_array(image: sitk.Image) -> np.ndarray:
    """The voxels of ``image`` in file (nibabel) axis order."""
    return sitk.GetArrayFromImage(image).T


def grid_image(shape: tuple, affine: np.ndarray) -> sitk.Image:
    """An empty image with the grid ``shape``/``affine``: a resampling reference."""
    return to_sitk(np.zeros(shape, np.float32), affine)


def mni_reference() -> sitk.Image:
    """The MSLesSeg grid (FSL MNI152 1 mm, 182x218x182, LAS)."""
    return grid_image(MNI_SHAPE, MNI_AFFINE)


def read_scan(path: Path, option: str) -> tuple[sitk.Image, nib.Nifti1Header]:
    """A native 3D scan as a float32 SimpleITK image, and its header.

    UserError naming ``option`` and the file for 4D (or 2D) files and empty images.
    """
    shape = tuple(read_header(path).get_data_shape())
    if len(shape) != 3:
        raise UserError(f"{option} {path}: expected a 3D image, got shape {shape}")
    volume = read_volume(path, np.float32)
    data = np.nan_to_num(volume.data, nan=0.0, posinf=0.0, neginf=0.0)
    if min(data.shape) < 8 or np.ptp(data) == 0:
        raise UserError(f"{option} {path}: image is empty or too small ({data.shape})")
    return to_sitk(data, volume.affine), volume.header
