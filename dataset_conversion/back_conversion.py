"""Back-conversion: a predicted mask in nnU-Net order -> the source dataset's naming and header.

The output file carries the header of the case's reference image (the
source mask when there is one, else the first channel), so affine,
qform/sform matrices and codes equal the source bit for bit; data is uint8.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mslesseg_nnunet.dataset_conversion.raw_dataset import CASE_MAP
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import read_header, write_volume


def load_case_map(dataset_folder: Path) -> dict:
    """The ``case_map.json`` of a raw dataset written by ``mslesseg convert``."""
    path = Path(dataset_folder) / CASE_MAP
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (was the dataset written by mslesseg "
                        "convert?)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def as_uint8_mask(mask: np.ndarray, where: str) -> np.ndarray:
    """``mask`` as uint8; raise UserError if it holds values that are not integers 0-255."""
    mask = np.asarray(mask)
    if mask.dtype == bool or mask.dtype == np.uint8:
        return mask.astype(np.uint8, copy=False)
    if mask.size and (mask.min() < 0 or mask.max() > 255 or not np.all(np.mod(mask, 1) == 0)):
        raise UserError(f"{where}: mask values must be integers 0-255")
    return mask.astype(np.uint8)


def write_back(mask: np.ndarray, case_entry: dict, out_root: Path) -> Path:
    """Write ``mask`` to ``out_root / case_entry["output"]`` with the reference image's header.

    Parameters
    ----------
    mask : label array in the reference file's own axis order (as read by
        ``mslesseg_nnunet.nifti.read_volume``).
    case_entry : a ``case_map.json`` / ``prepare_prediction_inputs`` entry
        (``reference_image``, ``output``).
    out_root : folder of the back-converted outputs.

    Returns the written file.
    """
    reference = Path(case_entry["reference_image"])
    header = read_header(reference)
    target = Path(out_root) / case_entry["output"]
    shape = tuple(header.get_data_shape()[:3])
    if tuple(np.shape(mask)) != shape:
        raise UserError(f"{target}: mask shape {tuple(np.shape(mask))} differs from the source "
                        f"image {reference} (shape {shape})")
    write_volume(target, as_uint8_mask(mask, str(target)), header, dtype=np.uint8)
    return target
