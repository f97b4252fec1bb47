"""Tiny MSLesSeg and MSSEG-2 source trees with the real file names and header conventions.

MSLesSeg: float32 images (qform/sform code 4) and float32 {0,1} masks (code 1)
on the LAS MNI152 1 mm affine, in ``<root>/train/P{n}/T{k}/`` and
``<root>/test/P{n}/``. MSSEG-2: anisotropic, oblique grids per patient,
``training/<id>/`` with four expert masks and the consensus, ``testing/<id>/``.
Arrays are small so that tests run in seconds.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

MNI_LAS = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
SHAPE = (24, 28, 24)


def save(path: Path, data: np.ndarray, affine: np.ndarray, code: int) -> Path:
    """Save ``data`` with ``affine`` as both qform and sform, with the given code."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_qform(affine, code=code)
    img.header.set_sform(affine, code=code)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def blobs(rng: np.random.Generator, shape, n: int, radius: tuple[int, int] = (1, 3)) -> np.ndarray:
    """A binary array with ``n`` random balls."""
    grid = np.indices(shape)
    out = np.zeros(shape, dtype=bool)
    for _ in range(n):
        r = rng.integers(radius[0], radius[1] + 1)
        centre = [rng.integers(r, s - r) for s in shape]
        out |= sum((g - c) ** 2 for g, c in zip(grid, centre)) <= r * r
    return out


def brain(rng: np.random.Generator, shape, lesion: np.ndarray) -> np.ndarray:
    """A float32 'skull-stripped' image: ellipsoid of noise, brighter in lesions."""
    grid = np.indices(shape)
    inside = sum(((g - (s - 1) / 2) / (s / 2)) ** 2 for g, s in zip(grid, shape)) <= 1.0
    image = (rng.normal(100, 10, shape) + 60 * lesion) * inside
    return image.astype(np.float32)


def write_mslesseg_tree(root: Path, timepoints: dict[int, int] | None = None,
                        test_patients=(54, 55), test_masks: bool = True,
                        modalities=("FLAIR", "T1", "T2"), shape=SHAPE, seed: int = 0) -> Path:
    """Write a fake MSLesSeg dataset under ``root/"MSLesSeg Dataset"``; return that folder.

    ``timepoints`` maps patient number -> number of timepoints (default
    {1: 2, 2: 1, 3: 3, 4: 1, 5: 2, 6: 1}).
    """
    timepoints = timepoints or {1: 2, 2: 1, 3: 3, 4: 1, 5: 2, 6: 1}
    rng = np.random.default_rng(seed)
    top = Path(root) / "MSLesSeg Dataset"

    def scan(folder: Path, stem: str, with_mask: bool) -> None:
        lesion = blobs(rng, shape, 3)
        for m in modalities:
            save(folder / f"{stem}_{m}.nii.gz", brain(rng, shape, lesion), MNI_LAS, 4)
        if with_mask:
            save(folder / f"{stem}_MASK.nii.gz", lesion.astype(np.float32), MNI_LAS, 1)

    for n, k in timepoints.items():
        for t in range(1, k + 1):
            scan(top / "train" / f"P{n}" / f"T{t}", f"P{n}_T{t}", True)
    for n in test_patients:
        scan(top / "test" / f"P{n}", f"P{n}", test_masks)
    info = top / "info_dataset" / "clinical_data.csv"
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text("Patient;Timepoint;Age;Sex;MS Type;EDSS;Lesion Number;Lesion Volume;\n")
    return top


def oblique_affine(spacing, angle: float) -> np.ndarray:
    """An affine with the given voxel spacing, rotated by ``angle`` radians about z."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = (-20.0, -30.0, -10.0)
    return affine


def write_msseg2_tree(root: Path, train_ids=("013", "015", "016", "018"), empty_ids=("015",),
                      test_ids=("001", "002"), seed: int = 0) -> Path:
    """Write a fake MSSEG-2 dataset under ``root/"MSSEG-2"``; return that folder.

    Patients in ``empty_ids`` have empty ground truths (no new lesion).
    Expert masks differ from each other; ``ground_truth.nii.gz`` is their
    majority (at least 3 of 4).
    """
    rng = np.random.default_rng(seed)
    top = Path(root) / "MSSEG-2"
    for i, pid in enumerate([*train_ids, *test_ids]):
        shape = (20 + 2 * i, 24, 16)
        affine = oblique_affine((0.9 + 0.1 * i, 0.75, 1.5), 0.1 * i)
        testing = pid in test_ids
        folder = top / ("testing" if testing else "training") / pid
        lesion = np.zeros(shape, bool) if pid in empty_ids else blobs(rng, shape, 2)
        for t in (1, 2):
            save(folder / f"flair_time0{t}_on_middle_space.nii.gz",
                 brain(rng, shape, lesion if t == 2 else np.zeros(shape, bool)), affine, 1)
        if testing:
            continue
        experts = [lesion & (rng.random(shape) > 0.1) for _ in range(4)]
        for k, expert in enumerate(experts, start=1):
            save(folder / f"ground_truth_expert{k}.nii.gz", expert.astype(np.uint8), affine, 1)
        consensus = (np.sum(experts, axis=0) >= 3).astype(np.uint8)
        save(folder / "ground_truth.nii.gz", consensus, affine, 1)
    return top
