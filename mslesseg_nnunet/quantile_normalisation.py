"""Quantile normalisation of MRI intensities inside the brain (seed 002, Badea & Popa 2024).

Each scan's intensity distribution inside the brain is mapped onto a reference
distribution: the voxel of rank ``i`` among a scan's ``n`` brain voxels takes
the reference's quantile at probability ``i / (n - 1)``; tied intensities take
the mean of the values of the ranks they share (Bolstad et al. 2003, the
method seed 002 cites). The reference is a quantile function sampled at
``N_QUANTILES`` evenly spaced probabilities: by default the mean of the
training scans' quantile functions (Bolstad's mean of the sorted columns),
or one training scan's (seed 002's "template").

The brain is nnU-Net's nonzero mask of the case (any channel nonzero, holes
filled): the region of a skull-stripped scan that nnU-Net crops to. Voxels
outside it stay 0. A dataset's references live in its ``dataset.json`` under
``DATASET_KEY`` (channel index -> quantile function), which nnU-Net copies into
every model folder trained on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import read_volume, write_volume

DATASET_KEY = "quantile_normalisation"
N_QUANTILES = 1001


def brain_mask(channels: Sequence[np.ndarray]) -> np.ndarray:
    """Any channel nonzero, holes filled: nnU-Net's ``create_nonzero_mask`` (without importing
    torch with it). Holes are filled within the nonzero voxels' bounding box only, which gives
    the same mask: everything outside the box is background connected to the image border."""
    nonzero = np.any([c != 0 for c in channels], axis=0)
    mask = np.zeros_like(nonzero)
    if nonzero.any():
        axes = range(nonzero.ndim)
        box = tuple(slice(i[0], i[-1] + 1) for i in (
            np.flatnonzero(nonzero.any(axis=tuple(b for b in axes if b != a))) for a in axes))
        mask[box] = ndimage.binary_fill_holes(nonzero[box])
    return mask


def quantile_function(values: np.ndarray, n_quantiles: int = N_QUANTILES) -> np.ndarray:
    """Quantiles of ``values`` at ``n_quantiles`` evenly spaced probabilities from 0 to 1."""
    return np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0.0, 1.0, n_quantiles))


def tie_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's group of equal values (groups numbered in ascending order of value) and the
    size of every group (0 for unused numbers)."""
    low = values.min()
    if float(values.max()) - float(low) < 2 ** 20 and np.array_equal(values, np.round(values)):
        groups = values.astype(np.int64) - int(low)  # integer intensities: no sorting
    else:
        order = np.argsort(values)
        ordered = values[order]
        groups = np.empty(values.size, dtype=np.int64)
        groups[order] = np.cumsum(np.concatenate(([False], ordered[1:] != ordered[:-1])))
    return groups, np.bincount(groups)


def map_onto(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` (1D) quantile-normalised onto ``reference`` (a quantile function)."""
    n = values.size
    if n < 2:
        raise ValueError("quantile normalisation needs at least 2 values")
    reference = np.asarray(reference, dtype=np.float64)
    groups, counts = tie_groups(values)
    at_rank = np.interp(np.arange(n) / (n - 1), np.linspace(0.0, 1.0, reference.size), reference)
    cumulative = np.concatenate(([0.0], np.cumsum(at_rank)))
    ends = np.cumsum(counts)
    return ((cumulative[ends] - cumulative[ends - counts]) / np.maximum(counts, 1))[groups]


def normalise_channels(channels: Sequence[np.ndarray],
                       references: Mapping[int, np.ndarray]) -> list[np.ndarray]:
    """The channels of one case, those in ``references`` (index -> reference) quantile-normalised
    inside the case's brain mask (float32, 0 outside), the others unchanged."""
    mask = brain_mask(channels)
    if mask.sum() < 2:
        raise ValueError("fewer than 2 nonzero (brain) voxels")
    out = list(channels)
    for index, reference in references.items():
        normalised = np.zeros(mask.shape, dtype=np.float32)
        normalised[mask] = map_onto(channels[index][mask], reference)
        out[index] = normalised
    return out


def case_quantiles(paths: Sequence[Path], indices: Sequence[int],
                   n_quantiles: int = N_QUANTILES) -> list[np.ndarray]:
    """Quantile functions inside the brain of channels ``indices`` of the case ``paths``."""
    channels = [read_volume(p).data for p in paths]
    mask = brain_mask(channels)
    if mask.sum() < 2:
        raise UserError(f"{paths[0]}: fewer than 2 nonzero (brain) voxels")
    return [quantile_function(channels[i][mask], n_quantiles) for i in indices]


def normalise_case_files(paths: Sequence[Path], outputs: Sequence[Path],
                         references: Mapping[int, np.ndarray]) -> None:
    """Read one case's channels, quantile-normalise those in ``references`` and write them
    to ``outputs`` (same positions; float32, header geometry kept)."""
    volumes = [read_volume(p) for p in paths]
    try:
        channels = normalise_channels([v.data for v in volumes], references)
    except ValueError as exc:
        raise UserError(f"{paths[0]}: {exc}") from None
    for index in references:
        write_volume(outputs[index], channels[index], volumes[index].header, dtype=np.float32)


def stored_references(dataset_json: dict) -> dict[int, np.ndarray]:
    """Channel index -> reference quantile function, from a ``dataset.json`` (empty if none)."""
    channels = dataset_json.get(DATASET_KEY, {}).get("channels", {})
    return {int(k): np.asarray(v["quantiles"], dtype=np.float64) for k, v in channels.items()}


def normalise_folder(src: Path, dst: Path, cases: Sequence[str], positions: Sequence[int],
                     references: Mapping[int, np.ndarray], ending: str = ".nii.gz") -> None:
    """Write into ``dst`` the channels a model reads, in nnU-Net naming: model channel ``k`` is
    file ``{case}_{positions[k]:04d}`` of ``src``, normalised with ``references[k]`` when there
    is one, else linked."""
    dst.mkdir(parents=True, exist_ok=True)
    for case in tqdm(cases, desc="quantile-normalise", unit="case"):
        names = [f"{case}_{p:04d}{ending}" for p in positions]
        normalise_case_files([src / n for n in names], [dst / n for n in names], references)
        for k, name in enumerate(names):
            if k not in references:
                (dst / name).unlink(missing_ok=True)
                (dst / name).symlink_to((src / name).resolve())
