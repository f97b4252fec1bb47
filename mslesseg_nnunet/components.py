"""Connected components of binary lesion masks (6-, 18- or 26-connectivity).

One place for lesion counting so that synthesis, relabelling, postprocessing
and evaluation all agree on what a lesion is.
"""
from __future__ import annotations

import cc3d
import numpy as np

from mslesseg_nnunet.errors import UserError

CONNECTIVITIES = (6, 18, 26)
# The default of every command and protocol: MSLesSeg's clinical_data.csv lesion counts, MadSeg's
# multi-size labels (scipy's default structure) and Anima's MSSEG-2 evaluation all use 6.
LESION_CONNECTIVITY = 6


def check_connectivity(connectivity: int) -> int:
    """Return ``connectivity`` if it is 6, 18 or 26, else raise UserError."""
    if int(connectivity) not in CONNECTIVITIES:
        raise UserError(f"--connectivity: must be one of 6, 18, 26, got {connectivity}")
    return int(connectivity)


def label_components(mask: np.ndarray, connectivity: int = LESION_CONNECTIVITY) -> tuple[np.ndarray, int]:
    """Label the connected components of ``mask != 0``.

    Returns the label image (uint32, 0 = background, 1..n) and n.
    """
    check_connectivity(connectivity)
    labels, n = cc3d.connected_components(np.asarray(mask) != 0, connectivity=connectivity,
                                          return_N=True)
    return labels, int(n)


def component_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of each component 1..n (index 0 of the result is component 1)."""
    return np.bincount(labels.ravel(), minlength=n + 1)[1:]
