"""Scanner catalogue: which "scanner" acquired each synthetic scan and how.

The MSLesSeg training set is almost all Philips; the test set adds GE and
Siemens; some records say NONE. Each scanner brings its own intensity scale,
and each modality its slice thickness (2D thick-slice or 3D acquisition).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scanner:
    manufacturer: str
    model: str
    intensity_scale: float          # multiplies every modality's signal level


CATALOGUE = (
    Scanner("Philips Medical Systems", "Achieva", 1.0),
    Scanner("Philips Medical Systems", "Ingenia", 1.35),
    Scanner("Philips Healthcare", "Ingenia", 1.5),
    Scanner("GE MEDICAL SYSTEMS", "Signa HDxt", 0.7),
    Scanner("SIEMENS", "Avanto", 0.55),
    Scanner("NONE", "NONE", 1.0),
)
_TRAIN_WEIGHTS = (0.45, 0.3, 0.15, 0.04, 0.02, 0.04)
_TEST_WEIGHTS = (0.35, 0.25, 0.12, 0.18, 0.06, 0.04)


def choose_scanner(rng: np.random.Generator, test: bool) -> Scanner:
    """A scanner drawn with the training- or test-set mix of manufacturers."""
    weights = np.array(_TEST_WEIGHTS if test else _TRAIN_WEIGHTS)
    return CATALOGUE[rng.choice(len(CATALOGUE), p=weights / weights.sum())]


def slice_thickness(rng: np.random.Generator, modality: str) -> float:
    """Acquired slice thickness (mm): 3D sequences ~1 mm, 2D sequences 3-5 mm."""
    p_3d = {"FLAIR": 0.5, "T1": 0.7, "T2": 0.15}[modality]
    if rng.random() < p_3d:
        return float(rng.choice([1.0, 1.2]))
    return float(rng.choice([3.0, 4.0, 5.0]))
