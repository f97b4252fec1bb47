"""Monte Carlo lesion-mask variants (AdasLab, MSLesSeg 2024 4th place; seed 000).

AdasLab trained nnU-Net on "synthetic lesion masks" made by erosion, removal
and dilation of the annotated lesions, to mimic annotation variability. The
report gives no probabilities or sizes; here every lesion (6-connected
component of the training patch's label) independently stays, is eroded or
dilated by one voxel (6-neighbourhood), or is removed.

Keeping image and target consistent:

- erosion and dilation move only the lesion border, by one voxel: the
  partial-volume rim where raters disagree, so the image is left as it is.
  Dilation grows only into background (never into another lesion, the ignore
  label or nnU-Net's outside-the-brain ``-1``) and gives the new voxels the
  lesion's label; a lesion that one erosion would empty stays unchanged.
- removal would teach the network to ignore a visible lesion, so a removed
  lesion is also in-painted in the image: its voxels and a one-voxel margin
  get, per channel, the mean and standard deviation (as Gaussian noise) of the
  surrounding shell (two voxels wide) of non-lesion brain voxels.

Labels are kept per voxel, so this suits binary and multi-size (``msl``)
labels; distance-based (``dbl``) boundary/interior labels would need relabelling.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from scipy import ndimage

from mslesseg_nnunet.components import label_components

KEEP, ERODE, DILATE, REMOVE = range(4)
SHELL_WIDTH = 2


def lesion_mask_variant(image: np.ndarray, labels: np.ndarray, actions: np.ndarray,
                        ignore_label: int | None = None,
                        rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply one action per lesion; return the new (image, labels).

    Parameters
    ----------
    image : (C, X, Y[, Z]) float intensities.
    labels : (X, Y[, Z]) int labels: 0 background, > 0 lesion, negative (nnU-Net's
        outside-the-brain -1) and ``ignore_label`` are neither.
    actions : one of KEEP, ERODE, DILATE, REMOVE per lesion, in the order of
        :func:`lesion_components` (component 1 first).
    rng : noise of the in-painting (default: a fresh generator).
    """
    components, n = lesion_components(labels, ignore_label)
    if len(actions) != n:
        raise ValueError(f"{len(actions)} actions for {n} lesions")
    action = np.concatenate([[KEEP], np.asarray(actions, dtype=int)])[components]
    struct = ndimage.generate_binary_structure(labels.ndim, 1)
    out = labels.copy()

    eroding = action == ERODE
    # border_value=1: a lesion cut by the patch border is not eroded along that border.
    kept_core = ndimage.binary_erosion(eroding, struct, border_value=1)
    survives = np.bincount(components[kept_core], minlength=n + 1) > 0
    out[eroding & ~kept_core & survives[components]] = 0

    dilating = action == DILATE
    grown = ndimage.binary_dilation(dilating, struct) & (labels == 0)
    out[grown] = ndimage.grey_dilation(np.where(dilating, labels, 0), footprint=struct)[grown]

    removing = action == REMOVE
    if removing.any():
        out[removing] = 0
        image = image.copy()
        filled = ndimage.binary_dilation(removing, struct) & (out == 0)
        healthy = (labels == 0) & ~filled  # never an original lesion voxel: eroded rims look lesional
        shell = ndimage.binary_dilation(filled, struct, iterations=SHELL_WIDTH) & healthy
        if not shell.any():
            shell = ~filled
        rng = rng or np.random.default_rng()
        for c in range(image.shape[0] if shell.any() else 0):  # else nothing left to copy from
            values = image[c][shell]
            image[c][filled] = rng.normal(values.mean(), values.std(), int(filled.sum()))
    return image, out


def lesion_voxels(labels: np.ndarray, ignore_label: int | None = None) -> np.ndarray:
    """Boolean mask of the lesion voxels: label > 0 and not the ignore label."""
    lesion = labels > 0
    return lesion & (labels != ignore_label) if ignore_label is not None else lesion


def lesion_components(labels: np.ndarray, ignore_label: int | None = None) -> tuple[np.ndarray, int]:
    """6-connected components (4 in 2D) of the lesion voxels of ``labels`` and their count."""
    lesion = lesion_voxels(labels, ignore_label)
    if labels.ndim == 2:
        components, n = label_components(lesion[None], 6)
        return components[0], n
    return label_components(lesion, 6)


class LesionMaskVariantTransform(BasicTransform):
    """Per sample, one Monte Carlo variant of the lesion target (see the module docstring).

    Each lesion is eroded, dilated or removed with probability ``p_erode``,
    ``p_dilate``, ``p_remove``, else kept. Acts on the first segmentation
    channel; draws from the torch random generator (``torch.manual_seed``).
    """

    def __init__(self, p_erode: float = 0.25, p_dilate: float = 0.25, p_remove: float = 0.1,
                 ignore_label: int | None = None):
        super().__init__()
        probabilities = [p_erode, p_dilate, p_remove]
        if any(p < 0 for p in probabilities) or sum(probabilities) > 1:
            raise ValueError(f"mask variant probabilities must be >= 0 and sum to <= 1, got {probabilities}")
        self.cumulative = torch.tensor(np.cumsum([1 - sum(probabilities), *probabilities]), dtype=torch.float64)
        self.ignore_label = ignore_label

    def get_parameters(self, **data_dict) -> dict:
        labels = data_dict["segmentation"][0].numpy()
        _, n = lesion_components(labels, self.ignore_label)
        actions = torch.searchsorted(self.cumulative, torch.rand(n, dtype=torch.float64), right=True)
        return {"actions": actions.clamp_max(REMOVE).numpy(), "seed": torch.randint(2 ** 31, (1,)).item()}

    def apply(self, data_dict: dict, **params) -> dict:
        if not (params["actions"] != KEEP).any():
            return data_dict
        image, seg = data_dict["image"], data_dict["segmentation"]
        new_image, new_labels = lesion_mask_variant(image.numpy(), seg[0].numpy(), params["actions"],
                                                    self.ignore_label, np.random.default_rng(params["seed"]))
        data_dict["image"] = torch.from_numpy(new_image)
        seg = seg.clone()
        seg[0] = torch.from_numpy(new_labels)
        data_dict["segmentation"] = seg
        return data_dict
