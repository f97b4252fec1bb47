"""Reading binary masks and checking that a prediction matches its reference grid."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import read_volume

SPACING_ATOL = 1e-5
ORIGIN_ATOL = 1e-4
DIRECTION_ATOL = 1e-6  # Anima's tolerance on direction cosines


def read_mask(path: Path) -> tuple[np.ndarray, nib.Nifti1Header]:
    """Read a mask whose values are only 0 and 1 (any numeric type).

    Returns the boolean array and the header; raises UserError naming the file
    when other values are present.
    """
    vol = read_volume(path)
    data = vol.data
    if data.dtype == np.bool_:
        return data, vol.header
    mask = data != 0
    if np.issubdtype(data.dtype, np.unsignedinteger):
        bad = int(data.max(initial=0)) > 1
    else:  # every non-zero value must be exactly 1
        bad = np.count_nonzero(mask) != np.count_nonzero(data == 1)
    if bad:
        values = np.unique(data)
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if values.size > 6 else "")
        raise UserError(f"{path}: not a binary mask (values {shown}; expected 0 and 1)")
    return mask, vol.header


def grid(header: nib.Nifti1Header) -> dict:
    """Shape, spacing, origin and direction cosines of a header's voxel grid."""
    affine = header.get_best_affine()
    spacing = np.asarray(header.get_zooms()[:3], dtype=np.float64)
    return {"shape": tuple(int(s) for s in header.get_data_shape()[:3]),
            "spacing": spacing,
            "origin": affine[:3, 3],
            "direction": affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)}


def check_same_grid(pred_path: Path, pred_header, ref_path: Path, ref_header) -> None:
    """Raise UserError naming ``pred_path`` when its grid differs from ``ref_path``'s."""
    a, b = grid(pred_header), grid(ref_header)
    if a["shape"] != b["shape"]:
        problem = f"shape {a['shape']} differs from {b['shape']}"
    elif not np.allclose(a["spacing"], b["spacing"], rtol=0, atol=SPACING_ATOL):
        problem = f"spacing {_fmt(a['spacing'])} differs from {_fmt(b['spacing'])}"
    elif not np.allclose(a["origin"], b["origin"], rtol=0, atol=ORIGIN_ATOL):
        problem = f"origin {_fmt(a['origin'])} differs from {_fmt(b['origin'])}"
    elif not np.allclose(a["direction"], b["direction"], rtol=0, atol=DIRECTION_ATOL):
        problem = "orientation (direction cosines) differs"
    else:
        return
    raise UserError(f"{pred_path}: geometry mismatch with {ref_path}: {problem}")


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
