"""GIN: global intensity non-linear augmentation (Ouyang et al., arXiv 2111.12525).

A shallow network of gradient-free convolutions with fresh random weights per
sample maps the image to a new, non-linearly remapped "appearance" that keeps
the anatomy; the result is blended with the input and rescaled to its norm.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.base.basic_transform import ImageOnlyTransform

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class GINTransform(ImageOnlyTransform):
    """Random-convolution intensity augmentation for one (C, X, Y[, Z]) sample.

    ``num_layers`` convolutions (kernel size drawn per layer from
    ``kernel_sizes``, weights and biases ~ N(0, 1), drawn anew for every
    sample) map C -> ``intermediate_channels`` -> ... -> C channels with leaky
    ReLU between layers (none after the last). The output ``g`` is blended,
    ``alpha * g + (1 - alpha) * image`` with ``alpha ~ U(0, 1)``, and rescaled to
    the Frobenius norm of the input. Segmentations are left untouched. Uses the
    torch random generator, so ``torch.manual_seed`` makes it reproducible.

    Parameters
    ----------
    num_layers : int
        Number of random convolution layers (>= 2).
    intermediate_channels : int
        Channels between the first and last layer.
    kernel_sizes : sequence of int
        Odd kernel sizes to draw from.
    negative_slope : float
        Slope of the leaky ReLU.
    """

    def __init__(self, num_layers: int = 4, intermediate_channels: int = 2,
                 kernel_sizes: Sequence[int] = (1, 3), negative_slope: float = 0.01):
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"GIN needs at least 2 layers, got {num_layers}")
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"GIN kernel sizes must be odd and positive, got {list(kernel_sizes)}")
        self.num_layers = num_layers
        self.intermediate_channels = intermediate_channels
        self.kernel_sizes = tuple(kernel_sizes)
        self.negative_slope = negative_slope

    def get_parameters(self, **data_dict) -> dict:
        image = data_dict["image"]
        channels = image.shape[0]
        widths = [channels] + [self.intermediate_channels] * (self.num_layers - 1) + [channels]
        ndim = image.ndim - 1
        layers = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            k = self.kernel_sizes[torch.randint(len(self.kernel_sizes), (1,)).item()]
            weight = torch.randn((c_out, c_in) + (k,) * ndim)
            bias = torch.randn(c_out)
            layers.append((weight, bias))
        return {"layers": layers, "alpha": torch.rand(1).item()}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        conv = _CONV[img.ndim - 1]
        x = img[None].float()
        with torch.no_grad():
            out = x
            for i, (weight, bias) in enumerate(params["layers"]):
                out = conv(out, weight.to(x.device), bias.to(x.device), padding=weight.shape[-1] // 2)
                if i < len(params["layers"]) - 1:
                    out = F.leaky_relu(out, self.negative_slope)
            alpha = params["alpha"]
            mixed = alpha * out + (1.0 - alpha) * x
            mixed = mixed * (torch.linalg.vector_norm(x) / (torch.linalg.vector_norm(mixed) + 1e-5))
        return mixed[0].to(img.dtype)
