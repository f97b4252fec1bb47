"""``mslesseg synth mslesseg``: a synthetic dataset in the MSLesSeg release layout.

::

    train/P{n}/T{k}/P{n}_T{k}_{FLAIR,T1,T2,MASK}.nii.gz
    test/P{n}/P{n}_{FLAIR,T1,T2,MASK}.nii.gz      (patients numbered after training)
    info_dataset/clinical_data.csv
    info_dataset/patient_scanners_info/patient_scanners_info_{FLAIR,T1,T2}.csv
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.components import label_components
from mslesseg_nnunet.nifti import write_volume
from mslesseg_nnunet.synth.anatomy import expand_ventricles, template, template_coordinates
from mslesseg_nnunet.synth.clinical import ScanRecord, write_info_dataset
from mslesseg_nnunet.synth.contrasts import sample_contrast, texture_field
from mslesseg_nnunet.synth.grids import Grid, mni_grid
from mslesseg_nnunet.synth.headers import mslesseg_header
from mslesseg_nnunet.synth.lesions import MODALITIES, new_lesion, render
from mslesseg_nnunet.synth.options import check_count, check_spacing
from mslesseg_nnunet.parallel import parallel_map
from mslesseg_nnunet.synth.parallel import default_workers
from mslesseg_nnunet.synth.patients import (atrophy, lesion_history, patient_warp, rigid,
                                            rng_for, scanner_history)
from mslesseg_nnunet.synth.scan import Sampler, render_modality, support
from mslesseg_nnunet.synth.scanners import CATALOGUE, slice_thickness

#: Share of patients with 1, 2, 3, 4 timepoints (the release: 53 patients, 93 scans).
TIMEPOINT_WEIGHTS = (0.5, 0.25, 0.15, 0.1)
#: Smallest lesion load of a scan (mm3); the real minimum is 744.
MIN_LOAD_MM3 = 600.0
_SCAN, _EXTRA, _PROTOCOL = 11, 12, 13


@dataclass(frozen=True)
class ScanJob:
    """One scan to generate."""

    root: Path
    patient: int
    timepoint: int
    n_timepoints: int
    test: bool
    seed: int
    spacing: float

    def paths(self) -> dict:
        """Output file per modality and MASK."""
        if self.test:
            folder, stem = Path("test") / f"P{self.patient}", f"P{self.patient}"
        else:
            folder = Path("train") / f"P{self.patient}" / f"T{self.timepoint}"
            stem = f"P{self.patient}_T{self.timepoint}"
        return {m: self.root / folder / f"{stem}_{m}.nii.gz" for m in (*MODALITIES, "MASK")}


def _lesion_mask(lesions, sampler: Sampler, brain, grid: Grid, rng) -> tuple:
    """Render lesions and the scan's mask; add a lesion while the load is below the minimum."""
    for _ in range(50):
        maps = render(lesions)
        mask = (sampler(maps.fraction) >= 0.5) & brain
        if mask.sum() * grid.voxel_volume >= MIN_LOAD_MM3:
            return maps, mask
        lesions = lesions + [new_lesion(rng, float(rng.uniform(500, 1200)), site="deep")]
    raise RuntimeError("could not reach the minimum lesion load")


def make_scan(job: ScanJob) -> ScanRecord:
    """Generate and write the FLAIR, T1, T2 and MASK files of one scan."""
    tpl = template()
    grid = mni_grid(job.spacing)
    history, mimic_list = lesion_history(job.seed, job.patient, job.n_timepoints)
    scanner = scanner_history(job.seed, job.patient, job.n_timepoints, job.test)[job.timepoint - 1]
    rng = rng_for(job.seed, _SCAN, job.patient, job.timepoint)
    affine, displacement = patient_warp(job.seed, job.patient, grid)
    jitter = rigid(rng, rotation_deg=0.5, translation_mm=0.5)
    coords = template_coordinates(grid, affine @ jitter, displacement)
    expand_ventricles(coords, atrophy(job.seed, job.patient, job.timepoint))
    sampler = Sampler(coords, support(4))
    brain = sampler(tpl.brain.astype(np.float32)) >= 0.5
    labelled = history[job.timepoint - 1]
    maps, mask = _lesion_mask(labelled + mimic_list, sampler, brain, grid,
                              rng_for(job.seed, _EXTRA, job.patient, job.timepoint))
    # The slice thickness is the protocol's: fixed per patient and scanner.
    protocol = rng_for(job.seed, _PROTOCOL, job.patient, CATALOGUE.index(scanner))
    thickness = {m: slice_thickness(protocol, m) for m in MODALITIES}
    contrasts = {m: sample_contrast(rng, m, scanner.intensity_scale, thickness[m])
                 for m in MODALITIES}
    texture = texture_field(grid, rng)
    paths = job.paths()
    for m in MODALITIES:
        image = render_modality(contrasts[m], maps.delta[m], sampler, grid, rng, texture)
        image = np.where(brain, np.rint(np.maximum(image, 0.0)), 0.0).astype(np.float32)
        write_volume(paths[m], image, mslesseg_header(grid.affine, grid.shape, mask=False))
    write_volume(paths["MASK"], mask.astype(np.float32),
                 mslesseg_header(grid.affine, grid.shape, mask=True))
    _, n_lesions = label_components(mask, connectivity=6)
    return ScanRecord(patient=job.patient, timepoint=job.timepoint,
                      lesion_voxels=int(mask.sum()), lesion_count=n_lesions,
                      scanners={m: (scanner.manufacturer, scanner.model,
                                    contrasts[m].slice_thickness) for m in MODALITIES})


def plan_jobs(root: Path, patients: int, test_patients: int, max_timepoints: int,
              spacing: float, seed: int) -> list[ScanJob]:
    """All scan jobs: training patients 1..N (1..max_timepoints scans each), then test patients."""
    weights = np.array(TIMEPOINT_WEIGHTS[:max_timepoints])
    rng = rng_for(seed, 0)
    counts = rng.choice(np.arange(1, max_timepoints + 1), size=patients, p=weights / weights.sum())
    jobs = [ScanJob(root, p, t, int(n), False, seed, spacing)
            for p, n in zip(range(1, patients + 1), counts) for t in range(1, int(n) + 1)]
    jobs += [ScanJob(root, p, 1, 1, True, seed, spacing)
             for p in range(patients + 1, patients + test_patients + 1)]
    return jobs


def generate_mslesseg(out: Path, patients: int = 10, test_patients: int = 2,
                      max_timepoints: int = 4, spacing: float = 1.0, seed: int = 0,
                      overwrite: bool = False, workers: int | None = None) -> list[ScanRecord]:
    """Write a synthetic MSLesSeg tree to ``out`` (atomically); return one record per scan."""
    patients = check_count("--patients", patients, 1, 999)
    test_patients = check_count("--test-patients", test_patients, 0, 999)
    max_timepoints = check_count("--timepoints", max_timepoints, 1, 4)
    seed = check_count("--seed", seed, 0, 2**32 - 1)
    spacing = check_spacing(spacing)
    with atomic_dir(Path(out), overwrite) as tmp:
        jobs = plan_jobs(tmp, patients, test_patients, max_timepoints, spacing, seed)
        records = parallel_map(make_scan, jobs, workers or default_workers(), "synth mslesseg",
                               unit="scan")
        write_info_dataset(tmp, records, seed, MODALITIES)
    return records
