"""Tiny ISBI 2015, MSSEG-2016, 3D-MR-MS and BIDS source trees with the real names and endings.

Volumes are 8x9x7 (float32 images, uint8 {0,1} masks) so conversions take
well under a second; rater masks differ from each other so that label
options give different results.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fake_trees import MNI_LAS, blobs, brain, oblique_affine, save

SHAPE = (8, 9, 7)
ISBI_FILES = ("flair", "mprage", "pd", "t2")
MSSEG2016_FILES = ("FLAIR", "T1", "T2", "DP", "GADO")
MNI = "_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI"
MRMS_NAMINGS = {  # naming -> (image stems, label stem), {p} = patientNN
    "original": (("{p}_FLAIR", "{p}_T1W", "{p}_T1WKS", "{p}_T2W"), "{p}_consensus_gt"),
    "coregistered": (("FLAIR", "T1W", "T1WKS", "T2W"), "consensus_gt"),
    "MNI": (tuple(f"{m}{MNI}" for m in ("FLAIR", "T1", "T1POST", "T2")),
            "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI"),
    "longitudinal": (("study1_FLAIR", "study1_T1W", "study1_T2W", "study2_FLAIR", "study2_T1W",
                      "study2_T2W"), "gt"),
}


def raters(rng, lesion: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` different uint8 rater masks around ``lesion``."""
    return [((lesion & (rng.random(lesion.shape) > 0.3)) | blobs(rng, lesion.shape, 1, (1, 1)))
            .astype(np.uint8) for _ in range(n)]


def write_isbi_tree(root: Path, train=None, test=None, ending: str = ".nii",
                    seed: int = 0) -> Path:
    """ISBI 2015 under ``root/"ISBI 2015"``: {patient number: timepoints} per subset; raters'
    masks for training only; an ``orig/`` scan on another grid that must be ignored."""
    train = train or {1: 2, 2: 2, 3: 1}
    test = test or {1: 2}
    rng = np.random.default_rng(seed)
    top = Path(root) / "ISBI 2015"
    for subset, prefix, patients in (("training", "training", train),
                                     ("testdata_website", "test", test)):
        for n, k in patients.items():
            pdir = top / subset / f"{prefix}{n:02d}"
            for t in range(1, k + 1):
                stem = f"{pdir.name}_{t:02d}"
                lesion = blobs(rng, SHAPE, 2, (1, 2))
                for m in ISBI_FILES:
                    save(pdir / "preprocessed" / f"{stem}_{m}_pp{ending}",
                         brain(rng, SHAPE, lesion), MNI_LAS, 1)
                save(pdir / "orig" / f"{stem}_flair.nii.gz", np.ones((5, 6, 4), np.float32),
                     np.eye(4), 1)
                if subset == "training":
                    for r, mask in enumerate(raters(rng, lesion, 2), start=1):
                        save(pdir / "masks" / f"{stem}_mask{r}{ending}", mask, MNI_LAS, 1)
    return top


def write_msseg2016_tree(root: Path, training=None, testing=None, seed: int = 0) -> Path:
    """MSSEG-2016 (2021 release) under ``root/"MSSEG 2016"``: {centre: patients} per subset,
    a grid per centre, 7 raters and their majority as ``Consensus``."""
    training = training or {1: 2, 7: 1, 8: 1}
    testing = testing or {1: 1, 3: 1}
    rng = np.random.default_rng(seed)
    top = Path(root) / "MSSEG 2016"
    for subset, centres in (("Training", training), ("Testing", testing)):
        for centre, n_patients in centres.items():
            affine = oblique_affine((0.5 + 0.1 * centre, 1.0, 1.2), 0.05 * centre)
            for n in range(1, n_patients + 1):
                pdir = top / subset / f"Center_{centre:02d}" / f"Patient_{n:02d}"
                lesion = blobs(rng, SHAPE, 2, (1, 2))
                for m in MSSEG2016_FILES:
                    save(pdir / "Preprocessed_Data" / f"{m}_preprocessed.nii.gz",
                         brain(rng, SHAPE, lesion), affine, 1)
                masks = raters(rng, lesion, 7)
                for k, mask in enumerate(masks, start=1):
                    save(pdir / "Masks" / f"ManualSegmentation_{k}.nii.gz", mask, affine, 1)
                save(pdir / "Masks" / "Consensus.nii.gz",
                     (np.sum(masks, axis=0) >= 4).astype(np.uint8), affine, 1)
                save(pdir / "Masks" / "Brain_Mask.nii.gz", np.ones(SHAPE, np.uint8), affine, 1)
    return top


def write_portal_tree(root: Path) -> Path:
    """The 2016 challenge-portal layout (raw ``3DFLAIR`` ... on their own grids)."""
    top = Path(root) / "MSSEG portal"
    pdir = top / "Unprocessed training dataset" / "TrainingDataset_MSSEG" / "01016SACH"
    save(pdir / "3DFLAIR.nii.gz", np.ones(SHAPE, np.float32), MNI_LAS, 1)
    save(pdir / "Consensus.nii.gz", np.zeros(SHAPE, np.uint8), MNI_LAS, 1)
    return top


def write_mrms_tree(root: Path, naming: str, patients=(1, 2, 3), unlabelled=(3,),
                    seed: int = 0) -> Path:
    """3D-MR-MS patientNN/ folders in ``naming`` (see ``MRMS_NAMINGS``) under
    ``root/"3D-MR-MS"/<naming>``; patients in ``unlabelled`` have no (consensus or change) mask."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "3D-MR-MS" / naming
    images, label = MRMS_NAMINGS[naming]
    for n in patients:
        pdir = folder / f"patient{n:02d}"
        lesion = blobs(rng, SHAPE, 2, (1, 2))
        affine = oblique_affine((0.47, 0.47, 0.8), 0.1 * n)
        for stem in images:
            save(pdir / f"{stem.format(p=pdir.name)}.nii.gz", brain(rng, SHAPE, lesion), affine, 1)
        save(pdir / "brainmask.nii.gz", np.ones(SHAPE, np.uint8), affine, 1)
        if n not in unlabelled:
            save(pdir / f"{label.format(p=pdir.name)}.nii.gz", lesion.astype(np.uint8), affine, 1)
    return folder


def write_bids_tree(root: Path, sessions=None, seed: int = 0) -> Path:
    """A BIDS tree under ``root/"bids"``: {subject: sessions}; FLAIR ``.nii.gz``, T1w ``.nii``;
    lesion masks in ``derivatives/lesions/`` for every session but sub-04's."""
    sessions = sessions or {"sub-01": 2, "sub-02": 1, "sub-03": 2, "sub-04": 1}
    rng = np.random.default_rng(seed)
    top = Path(root) / "bids"
    for sub, k in sessions.items():
        for s in range(1, k + 1):
            ses = f"ses-{s:02d}"
            anat = top / sub / ses / "anat"
            lesion = blobs(rng, SHAPE, 2, (1, 2))
            save(anat / f"{sub}_{ses}_FLAIR.nii.gz", brain(rng, SHAPE, lesion), MNI_LAS, 1)
            save(anat / f"{sub}_{ses}_T1w.nii", brain(rng, SHAPE, lesion), MNI_LAS, 1)
            if sub != "sub-04":
                save(top / "derivatives" / "lesions" / sub / ses /
                     f"{sub}_{ses}_label-lesion_mask.nii.gz", lesion.astype(np.uint8), MNI_LAS, 1)
    return top
