"""Per-patient randomness shared by every scan of a patient: lesion history,
scanner history and anatomy warp. Each is derived from (seed, purpose, patient)
so any worker can rebuild it without talking to the others."""
from __future__ import annotations

import numpy as np

from mslesseg_nnunet.synth.fields import displacement_field
from mslesseg_nnunet.synth.grids import Grid
from mslesseg_nnunet.synth.lesions import evolve, mimics, patient_lesions
from mslesseg_nnunet.synth.scanners import choose_scanner

#: MNI point about which patient-specific affine changes are applied (mm).
BRAIN_CENTER = np.array([0.0, -18.0, 10.0])
_LESIONS, _SCANNERS, _WARP, _ATROPHY = 1, 2, 3, 4


def rng_for(seed: int, purpose: int, *keys: int) -> np.random.Generator:
    """An independent generator for one (seed, purpose, keys...) combination."""
    return np.random.default_rng([int(seed), int(purpose), *map(int, keys)])


def lesion_history(seed: int, patient: int, n_timepoints: int,
                   load_range: tuple[float, float] = (600.0, 60000.0)) -> tuple[list, list]:
    """Lesions at each timepoint (list of lists) and the patient's unlabelled mimics."""
    rng = rng_for(seed, _LESIONS, patient)
    load = float(np.exp(rng.uniform(*np.log(load_range))))
    history = [patient_lesions(rng, load)]
    for _ in range(1, n_timepoints):
        history.append(evolve(rng, history[-1]))
    return history, mimics(rng, int(rng.integers(3, 16)))


def scanner_history(seed: int, patient: int, n_timepoints: int, test: bool) -> list:
    """The scanner of each timepoint: usually the same, sometimes a change."""
    rng = rng_for(seed, _SCANNERS, patient)
    scanners = [choose_scanner(rng, test)]
    for _ in range(1, n_timepoints):
        scanners.append(scanners[-1] if rng.random() < 0.85 else choose_scanner(rng, test))
    return scanners


def rigid(rng: np.random.Generator, rotation_deg: float, translation_mm: float,
          scale: float = 0.0, center: np.ndarray = BRAIN_CENTER) -> np.ndarray:
    """A random 4x4 world transform (small rotation, translation, optional scaling) about ``center``."""
    angles = np.deg2rad(rng.normal(0.0, rotation_deg, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rot = (np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
           @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
           @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]))
    linear = rot @ np.diag(1.0 + rng.uniform(-scale, scale, 3))
    out = np.eye(4)
    out[:3, :3] = linear
    out[:3, 3] = center - linear @ center + rng.normal(0.0, translation_mm, 3)
    return out


def patient_warp(seed: int, patient: int, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The patient's residual anatomy difference from the template after registration:
    a global affine (world 4x4) and a smooth displacement (template voxels)."""
    rng = rng_for(seed, _WARP, patient)
    affine = rigid(rng, rotation_deg=1.5, translation_mm=1.0, scale=0.04)
    return affine, displacement_field(grid, rng, amplitude_mm=1.8)


def atrophy(seed: int, patient: int, timepoint: int) -> float:
    """Ventricle enlargement of a patient at a timepoint (0 = template size), slowly growing."""
    base = rng_for(seed, _ATROPHY, patient).uniform(0.0, 0.3)
    return float(base + 0.01 * (timepoint - 1))
