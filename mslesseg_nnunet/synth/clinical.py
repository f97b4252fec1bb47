"""The ``info_dataset`` tables of MSLesSeg, with the real files' quirks.

``clinical_data.csv`` is ';'-separated with decimal commas and a header whose
last two names are shifted: "Lesion Number" stays empty, "Lesion Volume" holds
the mask voxel count and an unnamed 9th column holds the 6-connectivity lesion
count. ``patient_scanners_info_{FLAIR,T1,T2}.csv`` list the scanner and slice
thickness of every scan (columns as far as public code documents them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLINICAL_HEADER = "Patient;Timepoint;Age;Sex;MS Type;EDSS;Lesion Number;Lesion Volume;"
SCANNER_HEADER = "Patient;Timepoint;MANUFACTURER;SCANNER;SliceThickness[mm]"
MS_TYPES = ("SMRR", "SMSP", "SMPP")
_MS_TYPE_WEIGHTS = (0.8, 0.12, 0.08)


@dataclass(frozen=True)
class ScanRecord:
    """What the tables need to know about one generated scan."""

    patient: int
    timepoint: int
    lesion_voxels: int
    lesion_count: int
    scanners: dict          # modality -> (manufacturer, model, slice thickness mm)


def decimal_comma(value: float, digits: int) -> str:
    """``28.09`` -> ``"28,09"``; whole numbers keep no decimals when ``digits`` is 0."""
    return f"{value:.{digits}f}".replace(".", ",")


def _thickness(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else decimal_comma(value, 1)


def clinical_rows(records: list[ScanRecord], seed: int) -> list[str]:
    """One row per scan; demographics drawn per patient from ``seed``."""
    rows = []
    for rec in records:
        rng = np.random.default_rng([seed, 7, rec.patient])
        age = rng.uniform(18.0, 62.0) + 0.9 * (rec.timepoint - 1)
        sex = "F" if rng.random() < 0.7 else "M"
        ms_type = MS_TYPES[rng.choice(3, p=np.array(_MS_TYPE_WEIGHTS))]
        edss = 0.5 * rng.integers(0, 13 if ms_type == "SMRR" else 16) + 0.5 * (rec.timepoint - 1)
        rows.append(";".join([f"P{rec.patient}", f"T{rec.timepoint}", decimal_comma(age, 2), sex,
                              ms_type, decimal_comma(edss, 1), "", str(rec.lesion_voxels),
                              str(rec.lesion_count)]))
    return rows


def scanner_rows(records: list[ScanRecord], modality: str) -> list[str]:
    """One row per scan for ``patient_scanners_info_<modality>.csv``."""
    rows = []
    for rec in records:
        manufacturer, model, thickness = rec.scanners[modality]
        rows.append(";".join([f"P{rec.patient}", f"T{rec.timepoint}", manufacturer, model,
                              _thickness(thickness)]))
    return rows


def write_info_dataset(root: Path, records: list[ScanRecord], seed: int,
                       modalities: tuple[str, ...]) -> None:
    """Write ``info_dataset/clinical_data.csv`` and the per-modality scanner tables."""
    info = Path(root) / "info_dataset"
    (info / "patient_scanners_info").mkdir(parents=True, exist_ok=True)
    records = sorted(records, key=lambda r: (r.patient, r.timepoint))
    _write_lines(info / "clinical_data.csv", [CLINICAL_HEADER, *clinical_rows(records, seed)])
    for modality in modalities:
        _write_lines(info / "patient_scanners_info" / f"patient_scanners_info_{modality}.csv",
                     [SCANNER_HEADER, *scanner_rows(records, modality)])


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
