"""Lesion synthesis: synthetic MS lesions pasted into training patches, the label updated.

Kamraoui et al. (seed 004) train new-lesion models on real and synthetic samples
(real:synthetic 1:3 per mini-batch); the MSLesSeg competition's error analysis
(seed 000) names small and low-contrast lesions as what models miss. Here a
sample becomes synthetic with probability ``probability`` (3/4 for 1:3): 1 to 4
lesions drawn from wide ranges of size and contrast are rendered by our lesion
renderer (:func:`mslesseg_nnunet.synth.lesions.render_one`: irregular
ellipsoids with a fading, patchy signal) and pasted into normal-appearing
tissue of the patch; voxels with a lesion fraction >= 0.5 get the lesion label.

Contrast of a lesion on channel ``c``: ``(lesion - m) = f_c * (tissue - m)``
inside it, fading out at its edge, with ``tissue`` the median of the
normal-appearing tissue in the lesion's box, ``m`` the patch's minimum (the
zero signal when the patch holds background outside a non-masked
normalisation; otherwise its darkest voxel, which brings the effective ratio
closer to 1: docs/trainers.md) and ``f_c`` drawn
per lesion and channel from the channel's range (:data:`CONTRAST_RANGES`):
hyperintense on FLAIR, T2 and PD, hypo- to isointense on T1. MSSEG-2 pairs
(channels ``time01``, ``time02``) get new lesions in ``time02`` only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from mslesseg_nnunet.synth.lesions import Lesion, random_ellipsoid, render_one

#: (low, high) lesion/tissue intensity ratio per modality. FLAIR reaches down to the
#: low contrast of 3D FLAIR (lesions 1.2-1.4x white matter) and up to MSLesSeg's 2x.
CONTRAST_RANGES = {"FLAIR": (1.1, 2.2), "T2": (1.2, 2.3), "PD": (1.1, 1.8), "T1": (0.55, 1.02)}
#: MSSEG-2 channels: new lesions appear in the follow-up FLAIR only.
LONGITUDINAL = {"time01": None, "time02": "FLAIR"}


def channel_contrasts(channel_names: Sequence[str]) -> tuple:
    """Per channel, its (low, high) lesion/tissue ratio range, or None (left untouched).

    A channel is matched by name: ``time01`` / ``time02`` (MSSEG-2), else the
    first of FLAIR, T2, PD, T1 that the name contains (case-insensitive).
    """
    ranges = []
    for name in channel_names:
        key = name.casefold()
        if key in LONGITUDINAL:
            modality = LONGITUDINAL[key]
        else:
            modality = next((m for m in CONTRAST_RANGES if m.casefold() in key), "unknown")
            if modality == "unknown":
                raise ValueError(f"lesion synthesis: channel {name!r} is none of "
                                 f"{', '.join([*CONTRAST_RANGES, *LONGITUDINAL])}: unknown lesion contrast")
        ranges.append(CONTRAST_RANGES[modality] if modality else None)
    if all(r is None for r in ranges):
        raise ValueError(f"lesion synthesis: no channel to paste lesions into among {list(channel_names)}")
    return tuple(ranges)


def normal_tissue(image: np.ndarray, seg: np.ndarray, reference: int,
                  percentiles: tuple[float, float]) -> np.ndarray:
    """Normal-appearing tissue of a (C, X, Y, Z) patch: voxels labelled 0 (no lesion, no
    padding, not ignored), not background (every channel 0 or at its minimum), whose
    ``reference`` channel lies between its ``percentiles`` over those voxels."""
    flat = image.reshape(len(image), -1)
    background = np.all((image == 0) | (image == flat.min(axis=1)[:, None, None, None]), axis=0)
    brain = (seg[0] == 0) & ~background
    values = image[reference][brain]
    if values.size < 27:
        return np.zeros_like(brain)
    lo, hi = np.percentile(values[::4], percentiles)
    return brain & (image[reference] >= lo) & (image[reference] <= hi)


def draw_lesions(rng: np.random.Generator, tissue: np.ndarray, count: int, volume: tuple[float, float],
                 elongation: tuple[float, float], contrasts: Sequence) -> list[Lesion]:
    """``count`` lesions centred in ``tissue``: volume log-uniform in ``volume`` (voxels),
    ellipsoid elongation uniform, one ratio per pasted channel (``contrast`` keyed by channel)."""
    candidates = np.flatnonzero(tissue)
    lesions = []
    for _ in range(count if candidates.size else 0):
        center = np.array(np.unravel_index(candidates[rng.integers(candidates.size)], tissue.shape),
                          dtype=np.float64) + rng.uniform(-0.5, 0.5, 3)
        size = float(np.exp(rng.uniform(*np.log(volume))))
        blob = random_ellipsoid(rng, center, size, rng.uniform(*elongation))
        ratios = {c: float(rng.uniform(*r)) for c, r in enumerate(contrasts) if r is not None}
        lesions.append(Lesion(blobs=(blob,), site="patch", contrast=ratios,
                              shape_seed=int(rng.integers(2**31))))
    return lesions


def paste(image: np.ndarray, seg: np.ndarray, lesions: list[Lesion], tissue: np.ndarray, label: int) -> None:
    """Render ``lesions`` clipped to ``tissue`` and paste them into ``image`` and ``seg`` in place
    (3D patches: image (C, X, Y, Z), seg (1, X, Y, Z))."""
    zero = image.reshape(len(image), -1).min(axis=1)
    allowed = tissue.astype(np.float32)
    pasted = []
    for lesion in lesions:          # tissue levels all measured before anything is pasted
        box, fraction, signal = render_one(lesion, tissue.shape, allowed)
        if box is not None:
            levels = {c: np.median(image[c][box][tissue[box]]) - zero[c] for c in lesion.contrast}
            pasted.append((box, fraction, signal, lesion.contrast, levels))
    for box, fraction, signal, ratios, levels in pasted:
        for c, ratio in ratios.items():
            image[c][box] += signal * np.float32((ratio - 1.0) * levels[c])
        seg[0][box][fraction >= 0.5] = label


class LesionSynthesisTransform(BasicTransform):
    """Pastes synthetic lesions into a sample with probability ``probability`` (module docstring).

    Parameters
    ----------
    contrasts : sequence
        Per channel a (low, high) lesion/tissue ratio range, or None: :func:`channel_contrasts`.
    label : int
        Label written where a pasted lesion's fraction is >= 0.5.
    probability : float
        Probability that a sample gets synthetic lesions (real:synthetic 1:3 is 0.75).
    volume : (float, float)
        Lesion volume range in voxels (log-uniform), before clipping to tissue.
    count : (int, int)
        Lesions per synthetic sample (inclusive range, uniform).
    elongation : (float, float)
        Ratio of an ellipsoid's long axis to its short axes (uniform).
    tissue_percentiles : (float, float)
        Where lesions may lie: brain voxels whose intensity on the first pasted
        channel is within these percentiles; (0, 100) is anywhere in the brain.

    Draws from numpy's global generator (nnU-Net reseeds it in every augmentation
    worker), so ``np.random.seed`` makes it reproducible. 2D samples are treated
    as one-slice 3D ones.
    """

    def __init__(self, contrasts: Sequence, label: int = 1, probability: float = 0.75,
                 volume: tuple[float, float] = (3.0, 1500.0), count: tuple[int, int] = (1, 4),
                 elongation: tuple[float, float] = (1.0, 2.0),
                 tissue_percentiles: tuple[float, float] = (20.0, 80.0)):
        super().__init__()
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"lesion synthesis: probability must be in [0, 1], got {probability}")
        self.contrasts = tuple(contrasts)
        self.reference = next(c for c, r in enumerate(self.contrasts) if r is not None)
        self.label = label
        self.probability = probability
        self.volume = volume
        self.count = count
        self.elongation = elongation
        self.tissue_percentiles = tissue_percentiles

    def get_parameters(self, **data_dict) -> dict:
        rng = np.random.default_rng(np.random.randint(2**31 - 1))
        if rng.random() >= self.probability:
            return {"rng": None}
        return {"rng": rng, "count": int(rng.integers(self.count[0], self.count[1] + 1))}

    def apply(self, data_dict: dict, **params) -> dict:
        rng = params["rng"]
        if rng is None:
            return data_dict
        image, seg = data_dict["image"].numpy(), data_dict["segmentation"].numpy()
        if image.ndim == 3:                     # 2D sample: one slice of a 3D patch
            image, seg = image[..., None], seg[..., None]
        if len(self.contrasts) != len(image):
            raise ValueError(f"lesion synthesis: {len(self.contrasts)} channel contrasts for a "
                             f"{len(image)}-channel image")
        tissue = normal_tissue(image, seg, self.reference, self.tissue_percentiles)
        lesions = draw_lesions(rng, tissue, params["count"], self.volume, self.elongation, self.contrasts)
        paste(image, seg, lesions, tissue, self.label)
        return data_dict
