"""``mslesseg to-native``: an image on the MSLesSeg grid -> the native FLAIR grid."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesseg_nnunet.atomic import check_can_write
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.native.images import grid_image, to_array, to_sitk
from mslesseg_nnunet.native.provenance import decode_header, read_provenance
from mslesseg_nnunet.nifti import Volume, read_volume, write_volume
from mslesseg_nnunet.synth.grids import MNI_AFFINE, MNI_SHAPE


def native_volume(data: np.ndarray, preprocessed: Path, label: bool) -> Volume:
    """``data`` (on the MSLesSeg grid) on the native FLAIR grid of a preprocessed case:
    nearest neighbour for labels (uint8), linear otherwise (float32)."""
    if tuple(data.shape) != MNI_SHAPE:
        raise UserError(f"IMAGE: shape {tuple(data.shape)} is not the MSLesSeg grid {MNI_SHAPE}")
    provenance = read_provenance(preprocessed)
    header = decode_header(provenance["native_flair_header"])
    transform = sitk.ReadTransform(str(Path(preprocessed) / provenance["transforms"]["FLAIR"]))
    reference = grid_image(tuple(provenance["native_flair_shape"]), header.get_best_affine())
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    image = sitk.Resample(to_sitk(data, MNI_AFFINE), reference, transform.GetInverse(),
                          interpolator, 0.0, sitk.sitkFloat32)
    native = to_array(image)
    native = np.rint(native).astype(np.uint8) if label else native.astype(np.float32)
    return Volume(native, header)


def to_native(image: Path, preprocessed: Path, out: Path, label: bool = False,
              overwrite: bool = False) -> Volume:
    """Read ``image`` (MSLesSeg grid), write it on the native grid to ``out``."""
    check_can_write(Path(out), overwrite)
    volume = native_volume(read_volume(Path(image), np.float32).data, Path(preprocessed), label)
    write_volume(Path(out), volume.data, volume.header)
    return volume
