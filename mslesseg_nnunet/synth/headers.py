"""NIfTI headers of the synthetic files, matching the real releases field by field."""
from __future__ import annotations

import nibabel as nib
import numpy as np

from mslesseg_nnunet.nifti import make_header

#: The ``descrip`` string of the real MSLesSeg files (written by FSL).
MSLESSEG_DESCRIP = b"2203.11-dirty 2023-08-23T14:21:21+01:00"


def mslesseg_header(affine: np.ndarray, shape: tuple, mask: bool) -> nib.Nifti1Header:
    """Header of an MSLesSeg image (qform/sform code 4, MNI) or mask (code 1, scanner).

    As in the real files, masks carry negative zeros in the sform rows and a
    zero time step; images have a time step of 1.
    """
    code = 1 if mask else 4
    hdr = make_header(affine, qform_code=code, sform_code=code)
    hdr.set_data_shape(shape)           # so that the writer keeps pixdim[4:] as set here
    hdr["descrip"] = MSLESSEG_DESCRIP
    pixdim = hdr["pixdim"].copy()
    pixdim[4:] = [0.0 if mask else 1.0, 0.0, 0.0, 0.0]
    hdr["pixdim"] = pixdim
    if mask:
        for row in ("srow_x", "srow_y"):
            values = hdr[row].copy()
            values[:3] = np.where(values[:3] == 0, -0.0, values[:3])
            hdr[row] = values
    return hdr


def msseg2_header(affine: np.ndarray) -> nib.Nifti1Header:
    """Header of an MSSEG-2 middle-space file (qform/sform code 1, scanner)."""
    return make_header(affine, qform_code=1, sform_code=1)
