"""``mslesseg preprocess``: native FLAIR (+T1, T2) -> the MSLesSeg space.

N4 on every channel; rigid T1/T2 -> FLAIR; FLAIR -> MNI template (12-dof
affine by default, as MSLesSeg's FLIRT; 6 dof on request); every channel
resampled onto the FSL MNI152 1 mm grid in one step (composed transforms);
brain mask; voxels outside the brain set to 0 as in the MSLesSeg files.
Intensities are not normalised (nnU-Net does that).

Quality gates (one-line UserError, nothing written): the FLAIR must match the
template at least as well as ``MIN_TEMPLATE_MI`` (mutual information at the
solution) and every other channel the FLAIR at least as well as
``MIN_CHANNEL_MI``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.atomic import write_json
from mslesseg_nnunet.native.bias import N4_ITERATIONS, N4_SHRINK, n4_correct
from mslesseg_nnunet.native.brain_mask import brain_mask
from mslesseg_nnunet.native.images import mni_reference, read_scan, to_array, to_sitk
from mslesseg_nnunet.native.provenance import PROVENANCE, encode_header, sha256, versions
from mslesseg_nnunet.native import registration
from mslesseg_nnunet.nifti import write_volume
from mslesseg_nnunet.synth.anatomy import template
from mslesseg_nnunet.synth.grids import MNI_AFFINE, MNI_SHAPE
from mslesseg_nnunet.synth.headers import mslesseg_header

CHANNELS = ("FLAIR", "T1", "T2")
TRANSFORMS = "transforms"
BRAIN_MASK = "brain_mask.nii.gz"
#: Least mutual information (nats, ITK's Mattes estimate) accepted at the solution.
MIN_TEMPLATE_MI = 0.05
MIN_CHANNEL_MI = 0.42
#: The template brain is dilated by this much (mm) for the metric of non-skull-stripped scans.
METRIC_MASK_DILATION_MM = 10


@dataclass
class Timings:
    n4: float = 0.0
    registration: float = 0.0
    brain_mask: float = 0.0
    resampling: float = 0.0


def transform_name(channel: str) -> str:
    """File name of a channel's transform inside ``OUT/transforms``."""
    return "flair_to_mni.tfm" if channel == "FLAIR" else f"{channel.lower()}_to_flair.tfm"


def _template_images(skull_stripped: bool) -> tuple[sitk.Image, sitk.Image]:
    """The template T1 on the MSLesSeg grid and the metric mask (its brain, dilated for
    scans with skull so that the scalp does not pull the fit)."""
    tpl = template()
    mask = tpl.brain if skull_stripped else ndi.binary_dilation(
        tpl.brain, iterations=METRIC_MASK_DILATION_MM)
    return (to_sitk(tpl.t1, MNI_AFFINE),
            sitk.Cast(to_sitk(mask.astype(np.float32), MNI_AFFINE), sitk.sitkUInt8))


def register_to_template(flair: sitk.Image, dof: int, skull_stripped: bool,
                         path: Path) -> registration.Registration:
    """FLAIR -> template (fixed: the template): a similarity fit (7 dof), then 12-dof affine
    from it, or (``dof`` 6) its rotation and translation at the brain's own size; UserError
    when the match is too poor."""
    fixed, mask = _template_images(skull_stripped)
    similar = _check_template_fit(registration.similarity_to(
        fixed, flair, mask, "MOMENTS" if skull_stripped else "GEOMETRY"), path)
    if dof == 6:
        rigid = registration.without_scale(similar.transform)
        return _check_template_fit(registration.evaluate(fixed, flair, rigid, mask), path)
    return _check_template_fit(registration.affine_to(fixed, flair, similar, mask), path)


def _check_template_fit(fit: registration.Registration, path: Path) -> registration.Registration:
    if -fit.metric < MIN_TEMPLATE_MI:
        raise UserError(f"--flair {path}: does not match the brain template (mutual information "
                        f"{-fit.metric:.3f} < {MIN_TEMPLATE_MI}); is it a brain FLAIR?")
    return fit


def register_channel(flair: sitk.Image, image: sitk.Image, channel: str,
                     path: Path) -> registration.Registration:
    """``channel`` -> FLAIR, rigid; UserError when the match is too poor (other patient?)."""
    fit = registration.rigid_to(flair, image)
    if -fit.metric < MIN_CHANNEL_MI:
        raise UserError(f"--{channel.lower()} {path}: does not match the FLAIR after rigid "
                        f"registration (mutual information {-fit.metric:.3f} < {MIN_CHANNEL_MI}); "
                        "are both scans of the same patient and session?")
    return fit


def check_dof(dof: int) -> int:
    if int(dof) not in (6, 12):
        raise UserError(f"--dof: must be 6 or 12, got {dof}")
    return int(dof)


def preprocess(inputs: dict[str, Path], out: Path, skull_stripped: bool = False, dof: int = 12,
               n4: bool = True, overwrite: bool = False) -> dict:
    """Write the preprocessed case to ``out`` (atomically); return its provenance.

    ``inputs``: {channel: path} with FLAIR and optionally T1, T2.
    """
    dof = check_dof(dof)
    if "FLAIR" not in inputs:
        raise UserError("--flair: a FLAIR image is required")
    timings = Timings()
    scans, headers = {}, {}
    for channel, path in inputs.items():
        scans[channel], headers[channel] = read_scan(Path(path), f"--{channel.lower()}")
    start = time.perf_counter()
    if n4:
        scans = {c: n4_correct(image) for c, image in scans.items()}
    timings.n4 = time.perf_counter() - start

    start = time.perf_counter()
    to_flair = {c: register_channel(scans["FLAIR"], scans[c], c, inputs[c])
                for c in scans if c != "FLAIR"}
    to_template = register_to_template(scans["FLAIR"], dof, skull_stripped, inputs["FLAIR"])
    timings.registration = time.perf_counter() - start

    start = time.perf_counter()
    reference = mni_reference()
    resampled = {}
    for channel, image in scans.items():
        transform = to_template.transform if channel == "FLAIR" else sitk.CompositeTransform(
            [to_flair[channel].transform, to_template.transform])
        resampled[channel] = to_array(sitk.Resample(image, reference, transform, sitk.sitkLinear,
                                                    0.0, sitk.sitkFloat32))
    timings.resampling = time.perf_counter() - start

    start = time.perf_counter()
    mask = brain_mask(resampled["FLAIR"])
    timings.brain_mask = time.perf_counter() - start

    provenance = {
        "inputs": {c: {"path": str(Path(p).resolve()), "sha256": sha256(Path(p))}
                   for c, p in inputs.items()},
        "versions": versions(),
        "parameters": {"skull_stripped": skull_stripped, "dof": dof, "n4": n4,
                       "n4_shrink": N4_SHRINK, "n4_iterations": list(N4_ITERATIONS),
                       "metric": "Mattes mutual information",
                       "template_fit": "similarity (7 dof), then affine (12 dof)" if dof == 12
                       else "similarity (7 dof) without its scale",
                       "histogram_bins": registration.HISTOGRAM_BINS,
                       "coarse_spacing_mm": registration.METRIC_SPACING_MM,
                       "fine_sampling": registration.FINE_SAMPLING,
                       "template": "MNI ICBM152 2009a T1 (nilearn) on the FSL MNI152 1 mm grid"},
        "registration": {"flair_to_mni": {"dof": dof, "mutual_information": -to_template.metric},
                         **{f"{c.lower()}_to_flair": {"dof": 6,
                                                      "mutual_information": -fit.metric}
                            for c, fit in to_flair.items()}},
        "transforms": {c: f"{TRANSFORMS}/{transform_name(c)}" for c in scans},
        "native_flair_header": encode_header(headers["FLAIR"]),
        "native_flair_shape": [int(n) for n in headers["FLAIR"].get_data_shape()[:3]],
        "seconds": vars(timings),
    }
    image_header = mslesseg_header(MNI_AFFINE, MNI_SHAPE, mask=False)
    with atomic_dir(Path(out), overwrite) as tmp:
        (tmp / TRANSFORMS).mkdir()
        sitk.WriteTransform(to_template.transform, str(tmp / TRANSFORMS / transform_name("FLAIR")))
        for channel, fit in to_flair.items():
            sitk.WriteTransform(fit.transform, str(tmp / TRANSFORMS / transform_name(channel)))
        for channel, data in resampled.items():
            write_volume(tmp / f"{channel}.nii.gz", np.where(mask, data, 0.0).astype(np.float32),
                         image_header)
        write_volume(tmp / BRAIN_MASK, mask.astype(np.uint8),
                     mslesseg_header(MNI_AFFINE, MNI_SHAPE, mask=True))
        write_json(tmp / PROVENANCE, provenance)
    return provenance
