"""3D-MR-MS (University of Ljubljana, CC-BY) -> nnU-Net raw dataset (cross-sectional or
longitudinal).

Patient folders ``patientNN/`` in one of these namings (``.nii.gz`` or ``.nii``)::

    original      patient01/patient01_{FLAIR,T1W,T1WKS,T2W}.nii.gz, patient01_consensus_gt.nii.gz
    coregistered  patient01/{FLAIR,T1W,T1WKS,T2W,consensus_gt}.nii.gz
                  (open_ms_data cross_sectional/coregistered[_resampled]/)
    MNI           patient01/{FLAIR,T1,T1POST,T2}<MNI>.nii.gz, GOLD_STANDARD<MNI_GT>.nii.gz with
                  <MNI> = _N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI,
                  <MNI_GT> = _N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI
                  (open_ms_data cross_sectional/MNI/)
    longitudinal  patient01/study{1,2}_FLAIR.nii.gz, gt.nii.gz (lesion-change mask)
                  (open_ms_data longitudinal/coregistered[_resampled]/)

Channels are named FLAIR, T1, T1POST (T1WKS), T2; the longitudinal part is
shaped like MSSEG-2: channels time01, time02 (the two FLAIR studies), label
= the change mask. Brain masks are not used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mslesseg_nnunet.dataset_conversion.cases import Scan
from mslesseg_nnunet.dataset_conversion.layouts import (nifti_ending, nifti_file,
                                                        numbered_subdirs, parse_modalities,
                                                        require_nifti)
from mslesseg_nnunet.dataset_conversion.parallel import check_workers
from mslesseg_nnunet.dataset_conversion.raw_dataset import check_dataset_id, write_grouped_dataset
from mslesseg_nnunet.errors import UserError

MRMS_MODALITIES = ("FLAIR", "T1", "T1POST", "T2")
_MNI = "_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI"
_PATIENT = re.compile(r"^patient(\d+)$")
ATTRIBUTION = ("Source: 3D MR image database of Multiple Sclerosis patients with white matter "
               "lesion segmentations, Laboratory of Imaging Technologies, University of "
               "Ljubljana; Lesjak, Pernus, Likar and Spiclin, Neuroinformatics 2017 (doi "
               "10.1007/s12021-017-9348-7){extra}. Licence: CC-BY.")
LONGITUDINAL_ATTRIBUTION = ("; longitudinal part: Lesjak et al., Neuroinformatics 2016 "
                            "(lesion-change database)")


@dataclass(frozen=True)
class Naming:
    """File stems of one 3D-MR-MS naming (``{patient}`` stands for ``patientNN``)."""

    images: dict[str, str]
    label: str
    longitudinal: bool = False


NAMINGS = {
    "MNI": Naming({m: f"{m}{_MNI}" for m in MRMS_MODALITIES},
                  "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI"),
    "coregistered": Naming({"FLAIR": "FLAIR", "T1": "T1W", "T1POST": "T1WKS", "T2": "T2W"},
                           "consensus_gt"),
    "original": Naming({"FLAIR": "{patient}_FLAIR", "T1": "{patient}_T1W",
                        "T1POST": "{patient}_T1WKS", "T2": "{patient}_T2W"},
                       "{patient}_consensus_gt"),
    "longitudinal": Naming({"time01": "study1_FLAIR", "time02": "study2_FLAIR"}, "gt", True),
}


def mrms_patient_dirs(folder: Path) -> list[Path]:
    """``patientNN`` sub-folders of ``folder``, by number."""
    return [p for _, p in numbered_subdirs(folder, _PATIENT)]


def find_patient_folder(src: Path) -> Path:
    """``src`` if it holds ``patientNN/`` folders, else its only descendant (3 levels) that does."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: not a folder")
    if mrms_patient_dirs(src):
        return src.resolve()
    found = sorted(d for depth in ("*", "*/*", "*/*/*") for d in src.glob(depth)
                   if d.is_dir() and mrms_patient_dirs(d))
    if len(found) == 1:
        return found[0].resolve()
    if not found:
        raise UserError(f"{src}: not a 3D-MR-MS folder (no patientNN/ folders inside)")
    listing = ", ".join(str(d.relative_to(src)) for d in found)
    raise UserError(f"{src}: several 3D-MR-MS folders ({listing}); give one of them")


def naming_of(pdir: Path) -> str:
    """The naming whose first channel exists in patient folder ``pdir``."""
    for key, naming in NAMINGS.items():
        if nifti_file(pdir, next(iter(naming.images.values())).format(patient=pdir.name)):
            return key
    raise UserError(f"{pdir}: no 3D-MR-MS FLAIR (expected FLAIR, {pdir.name}_FLAIR, "
                    f"FLAIR{_MNI} or study1_FLAIR .nii[.gz])")


def channels_of(naming: Naming, modalities: str | list[str] | None) -> list[str]:
    """Channel names for ``naming``: ``modalities`` (cross-sectional) or time01, time02."""
    if not naming.longitudinal:
        return parse_modalities(modalities, MRMS_MODALITIES)
    names = None if modalities is None else [
        m.strip().lower() for m in (modalities.split(",") if isinstance(modalities, str)
                                    else modalities)]
    if names not in (None, ["flair"], list(naming.images)):
        raise UserError("--modalities: the longitudinal part is converted like MSSEG-2 "
                        f"(channels time01, time02: the FLAIR of both studies), got {modalities!r}")
    return list(naming.images)


def mrms_patient_scan(pdir: Path, key: str, channels: list[str], with_label: bool) -> Scan:
    """One patient folder in naming ``key``; its label when ``with_label`` and present."""
    naming = NAMINGS[key]
    stem = {c: s.format(patient=pdir.name) for c, s in naming.images.items()}
    images = {c: require_nifti(pdir, stem[c], f"{c} image") for c in channels}
    label_stem = naming.label.format(patient=pdir.name)
    label = nifti_file(pdir, label_stem) if with_label else None
    prefix = "MRMS3DLong" if naming.longitudinal else "MRMS3D"
    return Scan(f"{prefix}_{pdir.name}", pdir.name, images, (label,) if label else (),
                output=f"{pdir.name}/{label_stem}{nifti_ending(images[channels[0]])}",
                info={"naming": key, "set": "train" if label else "test"})


def mrms_folder_scans(folder: Path, modalities: str | list[str] | None,
                      with_labels: bool = True) -> tuple[list[Scan], list[str]]:
    """(scans, channel names) of every patient folder of ``folder``; all share one naming."""
    pdirs = mrms_patient_dirs(folder)
    keys = {p.name: naming_of(p) for p in pdirs}
    if len(set(keys.values())) > 1:
        listing = ", ".join(f"{p}: {k}" for p, k in keys.items())
        raise UserError(f"{folder}: patient folders in different namings ({listing})")
    key = next(iter(keys.values()))
    channels = channels_of(NAMINGS[key], modalities)
    return [mrms_patient_scan(p, key, channels, with_labels) for p in pdirs], channels


def convert_3dmrms(src: Path, dataset_id: int, name: str | None = None,
                   modalities: str | list[str] | None = None, workers: int | None = None,
                   overwrite: bool = False) -> Path:
    """Convert a 3D-MR-MS folder to ``$nnUNet_raw/DatasetNNN_<name>``.

    ``src``: a folder holding ``patientNN/`` folders, or one above it with
    exactly one such folder. Patients with a consensus (or change) mask go to
    imagesTr, the others to imagesTs. Case ids ``MRMS3D_patient07``
    (``MRMS3DLong_patient01`` for the longitudinal part; default names
    MRMS3D / MRMS3DLong). Returns the dataset folder.
    """
    workers = check_workers(workers)
    scans, channels = mrms_folder_scans(find_patient_folder(src), modalities)
    longitudinal = NAMINGS[scans[0].info["naming"]].longitudinal
    name = name or ("MRMS3DLong" if longitudinal else "MRMS3D")
    folder = check_dataset_id(dataset_id, name, overwrite)
    train = [s for s in scans if s.labels]
    test = [s for s in scans if not s.labels]
    description = (f"3D-MR-MS{' longitudinal (new and changed lesions)' if longitudinal else ''}, "
                   f"converted by mslesseg-nnunet from {Path(src).name}. "
                   + ATTRIBUTION.format(extra=LONGITUDINAL_ATTRIBUTION if longitudinal else ""))
    return write_grouped_dataset(
        folder, train, test, channels, description, workers, overwrite,
        reference="https://doi.org/10.1007/s12021-017-9348-7", licence="CC-BY",
        source={"dataset": "3D-MR-MS", "naming": scans[0].info["naming"],
                "channels": channels})
