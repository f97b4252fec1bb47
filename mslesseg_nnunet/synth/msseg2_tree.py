"""``mslesseg synth msseg2``: a synthetic dataset in the MSSEG-2 (MICCAI 2021) layout.

::

    training/<id>/flair_time01_on_middle_space.nii.gz
                  flair_time02_on_middle_space.nii.gz
                  ground_truth_expert1.nii.gz ... ground_truth_expert4.nii.gz
                  ground_truth.nii.gz          (consensus: voxels marked by >= 3 experts)
    testing/<id>/flair_time01_on_middle_space.nii.gz, flair_time02_on_middle_space.nii.gz

Both FLAIRs of a patient share one anisotropic "middle space" grid that varies
between patients; they are not skull-stripped. New lesions appear only at
time 2; the experts miss some small ones, disagree on borders (each reads the
lesion's partial-volume map at its own threshold) and sometimes add a lesion
nobody else sees. Some training patients have no new lesion.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.components import label_components
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import write_volume
from mslesseg_nnunet.synth.anatomy import expand_ventricles, template_coordinates
from mslesseg_nnunet.synth.contrasts import sample_contrast, texture_field
from mslesseg_nnunet.synth.fields import displacement_field
from mslesseg_nnunet.synth.grids import Grid
from mslesseg_nnunet.synth.head import head_flair, head_region
from mslesseg_nnunet.synth.headers import msseg2_header
from mslesseg_nnunet.synth.lesions import (evolve, mimics, new_lesion, nominal_volume,
                                            patient_lesions, render)
from mslesseg_nnunet.synth.options import check_count, check_spacing
from mslesseg_nnunet.parallel import parallel_map
from mslesseg_nnunet.synth.parallel import default_workers
from mslesseg_nnunet.synth.patients import BRAIN_CENTER, atrophy, rigid, rng_for
from mslesseg_nnunet.synth.scan import Sampler, render_modality
from mslesseg_nnunet.synth.scanners import choose_scanner

TRAINING_IDS = ("013 015 016 018 019 020 021 024 026 027 029 030 032 035 037 039 043 047 048 "
                "049 051 052 057 061 068 069 070 074 077 083 084 088 089 090 091 094 095 096 "
                "099 100").split()
TESTING_IDS = tuple(f"{i:03d}" for i in range(1, 101) if f"{i:03d}" not in TRAINING_IDS)
N_EXPERTS = 4
# The real consensus: the lesions delineated by 3 of the 4 experts, then a voxel-wise majority
# (3 of 4). A voxel marked by 3 experts lies in a lesion all 3 delineated, so both steps are
# "at least 3 votes". The real data's reviewer, who also accepted some lesions of 2 or fewer
# experts, is not simulated: those lesions are left out.
CONSENSUS_VOTES = 3
#: Share of patients without any new lesion.
NO_NEW_LESION_SHARE = 0.3
_PLAN, _LESIONS, _WARP, _SCAN, _EXPERT = 21, 22, 23, 24, 25


@dataclass(frozen=True)
class PatientJob:
    root: Path
    patient_id: str
    index: int                  # position in the id list (0-based), seeds everything
    test: bool
    seed: int
    spacing: float


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    test: bool
    new_lesions: int            # consensus lesions (6-connectivity)
    new_lesion_voxels: int


def middle_space_grid(rng: np.random.Generator, spacing_factor: float) -> Grid:
    """A patient's middle-space grid: anisotropic voxels, head-sized field of view,
    a random axis orientation and a small obliquity."""
    spacing = np.array([rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0), rng.uniform(1.0, 1.3)])
    spacing = rng.permutation(spacing) * spacing_factor
    fov = np.array([rng.uniform(165, 185), rng.uniform(205, 230), rng.uniform(175, 200)])
    shape = tuple(int(np.ceil(f / s)) for f, s in zip(fov, spacing))
    signs = np.array([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0]), 1.0])
    tilt = rigid(rng, rotation_deg=3.0, translation_mm=0.0, center=np.zeros(3))
    affine = np.eye(4)
    affine[:3, :3] = tilt[:3, :3] @ np.diag(signs * spacing)
    center = BRAIN_CENTER + rng.normal(0.0, 4.0, 3)
    affine[:3, 3] = center - affine[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return Grid(shape, affine)


def _lesions(job: PatientJob) -> tuple[list, list, list, list]:
    """Existing lesions at time 1 and time 2, new lesions (time 2 only) and mimics."""
    rng = rng_for(job.seed, _LESIONS, job.index)
    old = patient_lesions(rng, float(np.exp(rng.uniform(np.log(400), np.log(40000)))))
    later = evolve(rng, old, new_rate=0.0)
    no_new = job.index == 1 or (job.index > 1 and rng.random() < NO_NEW_LESION_SHARE)
    n_new = 0 if no_new else 1 + int(rng.poisson(2.0))
    new = [new_lesion(rng, float(np.exp(rng.uniform(np.log(8), np.log(400))))) for _ in range(n_new)]
    return old, later, new, mimics(rng, int(rng.integers(3, 16)))


def _expert_masks(job: PatientJob, new: list, sampler: Sampler, later: list) -> list[np.ndarray]:
    """Four expert masks of the new lesions: misses, own border threshold, rare extras."""
    masks = []
    for expert in range(N_EXPERTS):
        rng = rng_for(job.seed, _EXPERT, job.index, expert)
        seen = [les for les in new if rng.random() < (0.95 if nominal_volume(les) > 50 else 0.7)]
        if later and rng.random() < 0.2:
            seen.append(later[int(rng.integers(len(later)))])
        fraction = sampler(render(seen).fraction) if seen else None
        threshold = rng.uniform(0.3, 0.7)
        mask = fraction >= threshold if fraction is not None else np.zeros(sampler.shape, bool)
        masks.append(mask)
    return masks


def make_patient(job: PatientJob) -> PatientRecord:
    """Generate and write one MSSEG-2 patient folder."""
    rng = rng_for(job.seed, _PLAN, job.index)
    grid = middle_space_grid(rng, job.spacing)
    pose = rigid(rng, rotation_deg=4.0, translation_mm=3.0, scale=0.06)
    displacement = displacement_field(grid, rng_for(job.seed, _WARP, job.index), 2.0)
    scanner = choose_scanner(rng, job.test)
    thickness = float(rng.choice([1.0, 1.2, 3.0]))
    old, later, new, mimic_list = _lesions(job)
    head = head_flair(rng)
    folder = job.root / ("testing" if job.test else "training") / job.patient_id
    header = msseg2_header(grid.affine)
    sampler = None
    for time, lesions in ((1, old + mimic_list), (2, later + new + mimic_list)):
        scan_rng = rng_for(job.seed, _SCAN, job.index, time)
        jitter = rigid(scan_rng, rotation_deg=0.3, translation_mm=0.3)
        coords = template_coordinates(grid, pose @ jitter, displacement)
        expand_ventricles(coords, atrophy(job.seed, job.index, time))
        sampler = Sampler(coords, head_region())
        contrast = sample_contrast(scan_rng, "FLAIR", scanner.intensity_scale, thickness)
        image = render_modality(contrast, render(lesions).delta["FLAIR"], sampler, grid,
                                scan_rng, texture_field(grid, scan_rng), extra=head)
        background = image <= 0
        image[background] = np.abs(scan_rng.normal(0.0, 0.01 * contrast.wm_level,
                                                   int(background.sum())))
        write_volume(folder / f"flair_time0{time}_on_middle_space.nii.gz",
                     image.astype(np.float32), header)
    if job.test:
        return PatientRecord(job.patient_id, True, 0, 0)
    experts = _expert_masks(job, new, sampler, later)
    consensus = np.sum(experts, axis=0) >= CONSENSUS_VOTES
    for k, mask in enumerate(experts, start=1):
        write_volume(folder / f"ground_truth_expert{k}.nii.gz", mask.astype(np.uint8), header)
    write_volume(folder / "ground_truth.nii.gz", consensus.astype(np.uint8), header)
    return PatientRecord(job.patient_id, False, label_components(consensus, 6)[1],
                         int(consensus.sum()))


def generate_msseg2(out: Path, patients: int = 8, test_patients: int = 2, spacing: float = 1.0,
                    seed: int = 0, overwrite: bool = False,
                    workers: int | None = None) -> list[PatientRecord]:
    """Write a synthetic MSSEG-2 tree to ``out`` (atomically); return one record per patient.

    Training patients take the real training ids in order (013, 015, ...), test
    patients the remaining ids 001-100. ``spacing`` multiplies every patient's
    voxel size (same field of view).
    """
    patients = check_count("--patients", patients, 0, len(TRAINING_IDS))
    test_patients = check_count("--test-patients", test_patients, 0, len(TESTING_IDS))
    if patients + test_patients == 0:
        raise UserError("--patients/--test-patients: at least one patient is needed")
    seed = check_count("--seed", seed, 0, 2**32 - 1)
    spacing = check_spacing(spacing)
    with atomic_dir(Path(out), overwrite) as tmp:
        jobs = [PatientJob(tmp, pid, i, False, seed, spacing)
                for i, pid in enumerate(TRAINING_IDS[:patients])]
        jobs += [PatientJob(tmp, pid, 100 + i, True, seed, spacing)
                 for i, pid in enumerate(TESTING_IDS[:test_patients])]
        return parallel_map(make_patient, jobs, workers or default_workers(), "synth msseg2",
                            unit="patient")
