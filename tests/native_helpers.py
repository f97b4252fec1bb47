"""Native-looking scans for ``mslesseg preprocess`` tests: real MNI-space scans resampled
onto oblique, anisotropic grids with rescaled intensities (the 3D-MR-MS case, CC-BY,
Lesjak et al., Neuroinformatics 2017, see shared/data/3dmrms-real/README.md)."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from mslesseg_nnunet.nifti import make_header, write_volume
from mslesseg_nnunet.synth.grids import MNI_AFFINE

MRMS_FILES = {"FLAIR": "FLAIR", "T1": "T1", "T2": "T2", "MASK": "GOLD_STANDARD"}


def mrms_path(shared: Path, name: str) -> Path:
    folder = shared / "data" / "3dmrms-real" / "cross_sectional" / "MNI" / "patient07"
    return next(folder.glob(f"{MRMS_FILES[name]}_*.nii.gz"))


def rotation(degrees_x: float, degrees_z: float) -> np.ndarray:
    ax, az = np.deg2rad([degrees_x, degrees_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rx @ rz


def oblique_affine(spacing=(0.9, 0.9, 1.5), degrees=(12.0, -9.0), shape=(190, 230, 125),
                   centre=(3.0, -22.0, 15.0)) -> np.ndarray:
    """A grid rotated about two axes with anisotropic voxels, centred near the brain."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(*degrees) @ np.diag(spacing)
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return affine


def resample_from_mni(data: np.ndarray, affine: np.ndarray, shape, order: int) -> np.ndarray:
    """``data`` on the MSLesSeg grid sampled at the voxels of the grid (``shape``, ``affine``)."""
    vox = np.linalg.inv(MNI_AFFINE) @ affine
    return ndi.affine_transform(data.astype(np.float32), vox[:3, :3], vox[:3, 3], output_shape=shape,
                                order=order, mode="constant", cval=0.0)


def write_native(src: Path, dst: Path, affine: np.ndarray, shape, scale: float = 1.0,
                 label: bool = False) -> np.ndarray:
    """Resample a real MNI-space file onto the grid and write it (qform/sform code 1)."""
    data = np.asarray(nib.load(str(src)).dataobj, dtype=np.float32)
    out = resample_from_mni(data, affine, shape, 0 if label else 1)
    out = out.astype(np.uint8) if label else (out * scale).astype(np.float32)
    write_volume(dst, out, make_header(affine, 1, 1))
    return out
