"""IQDA: image-quality data augmentation (Kamraoui et al., MSSEG-2 2021; seed 004).

Each channel of a sample gets one of three degradations that mimic other
scanners and protocols; the segmentation is kept as it is:

- blur: Gaussian, one sigma ~ U(0.5, 1.75) voxels on every spatial axis;
- edge enhancement: unsharp masking with the inverse of that blur,
  ``2 * image - blur(image)`` (sigma from the same range);
- thick slices: a mean filter of 2, 3 or 4 voxels along one axis.

The Gaussian is batchgeneratorsv2's separable ``blur_dimension`` (the one
nnU-Net's own blur uses: kernel radius about 3 sigma, mirrored edges); the
mean filter replicates edge voxels, and for even sizes its window is
``[i - size // 2, i + (size - 1) // 2]`` (``scipy.ndimage.uniform_filter1d``'s).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.base.basic_transform import ImageOnlyTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import blur_dimension

KINDS = ("blur", "sharpen", "thick")


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """``img`` (C, X, Y[, Z]) blurred with one ``sigma`` (voxels) on every spatial axis."""
    for axis in range(img.ndim - 1):
        img = blur_dimension(img, sigma, axis)
    return img


def unsharp_mask(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Edge enhancement: ``img + (img - gaussian_blur(img, sigma))``."""
    return 2 * img - gaussian_blur(img, sigma)


def mean_filter(img: torch.Tensor, size: int, axis: int) -> torch.Tensor:
    """``img`` (C, X, Y[, Z]) averaged over ``size`` voxels along spatial ``axis`` (edges replicated)."""
    pad = [0, 0] * (img.ndim - 1)
    at = 2 * (img.ndim - 2 - axis)  # F.pad lists the last axis first
    pad[at:at + 2] = [size // 2, (size - 1) // 2]
    padded = F.pad(img[None], pad, mode="replicate")[0]
    return padded.unfold(axis + 1, size, 1).mean(-1)


class IQDATransform(ImageOnlyTransform):
    """One IQDA degradation per channel, drawn independently for every channel and sample.

    Parameters
    ----------
    sigma_range : (low, high) of the blur / unsharp-mask sigma in voxels.
    thick_sizes : mean-filter lengths to draw from.
    thick_axes : spatial axes the mean filter may run along (one is drawn). 2D
        patches (slices of nnU-Net's 2d configuration) get no thick-slice look.

    Uses the torch random generator: ``torch.manual_seed`` makes it reproducible.
    """

    def __init__(self, sigma_range: tuple[float, float] = (0.5, 1.75),
                 thick_sizes: Sequence[int] = (2, 3, 4), thick_axes: Sequence[int] = (0,)):
        super().__init__()
        if not 0 < sigma_range[0] <= sigma_range[1]:
            raise ValueError(f"IQDA sigma range must be positive and increasing, got {sigma_range}")
        if not thick_sizes or any(int(s) < 1 for s in thick_sizes):
            raise ValueError(f"IQDA thick-slice sizes must be positive, got {list(thick_sizes)}")
        if not set(thick_axes) <= {0, 1, 2}:
            raise ValueError(f"IQDA thick-slice axes must be among 0, 1, 2, got {list(thick_axes)}")
        self.sigma_range = tuple(map(float, sigma_range))
        self.thick_sizes = tuple(int(s) for s in thick_sizes)
        self.thick_axes = tuple(int(a) for a in thick_axes)

    def get_parameters(self, **data_dict) -> dict:
        image = data_dict["image"]
        axes = self.thick_axes if image.ndim == 4 else ()  # a 2D patch has no slice axis
        kinds = KINDS if axes else KINDS[:2]
        low, high = self.sigma_range
        draws = []
        for _ in range(image.shape[0]):
            kind = kinds[torch.randint(len(kinds), (1,)).item()]
            if kind == "thick":
                draws.append((kind, self.thick_sizes[torch.randint(len(self.thick_sizes), (1,)).item()],
                              axes[torch.randint(len(axes), (1,)).item()]))
            else:
                draws.append((kind, low + (high - low) * torch.rand(1).item()))
        return {"draws": draws}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        out = torch.empty_like(img)
        for c, (kind, *args) in enumerate(params["draws"]):
            channel = img[c:c + 1].float()
            if kind == "blur":
                channel = gaussian_blur(channel, *args)
            elif kind == "sharpen":
                channel = unsharp_mask(channel, *args)
            else:
                channel = mean_filter(channel, *args)
            out[c] = channel[0].to(img.dtype)
        return out
