"""Turning a folder to predict (any supported layout) into nnU-Net input files plus a case map."""
from __future__ import annotations

import re
from pathlib import Path

from mslesseg_nnunet.dataset_conversion.back_conversion import load_case_map
from mslesseg_nnunet.dataset_conversion.cases import FILE_ENDING, Scan, case_entry, \
    check_geometry, place_image
from mslesseg_nnunet.dataset_conversion.isbi2015 import (ISBI_MODALITIES, isbi_folder_scans,
                                                         isbi_patient_dirs)
from mslesseg_nnunet.dataset_conversion.layouts import (MSSEG2_CHANNELS, msseg2_patient_dirs,
                                                        msseg2_patient_scan, mslesseg_test_scans,
                                                        mslesseg_train_scans,
                                                        nnunet_input_scans, parse_modalities)
from mslesseg_nnunet.dataset_conversion.mrms3d import mrms_folder_scans, mrms_patient_dirs
from mslesseg_nnunet.dataset_conversion.msseg2016 import (MSSEG2016_MODALITIES,
                                                          msseg2016_centre_dirs,
                                                          msseg2016_folder_scans)
from mslesseg_nnunet.dataset_conversion.raw_dataset import CASE_MAP
from mslesseg_nnunet.dataset_conversion.parallel import map_with_progress
from mslesseg_nnunet.atomic import atomic_dir
from mslesseg_nnunet.errors import UserError

LAYOUTS = ("mslesseg-test", "mslesseg-train", "msseg2", "isbi2015", "msseg2016", "3dmrms",
           "nnunet")
_PATIENT = re.compile(r"^P\d+$")
_TIMEPOINT = re.compile(r"^T\d+$")


def detect_layout(src: Path) -> str:
    """Which layout ``src`` has: one of ``LAYOUTS``; raise UserError if none."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: not a folder")
    patients = [p for p in src.iterdir() if p.is_dir() and _PATIENT.match(p.name)]
    if any(t.is_dir() and _TIMEPOINT.match(t.name) for p in patients for t in p.iterdir()):
        return "mslesseg-train"
    if patients:
        return "mslesseg-test"
    if msseg2_patient_dirs(src):
        return "msseg2"
    if isbi_patient_dirs(src):
        return "isbi2015"
    if msseg2016_centre_dirs(src):
        return "msseg2016"
    if mrms_patient_dirs(src):
        return "3dmrms"
    if any(p.name.endswith(f"_0000{FILE_ENDING}") for p in src.iterdir()):
        return "nnunet"
    raise UserError(f"{src}: no input layout recognised (expected MSLesSeg P{{n}}/ folders, "
                    f"MSSEG-2, ISBI 2015, MSSEG-2016 or 3D-MR-MS patient folders, or nnU-Net "
                    f"{{case}}_0000{FILE_ENDING} files)")


def input_scans(src: Path, layout: str, modalities: list[str] | None) -> list[Scan]:
    """The scans of ``src`` in ``layout``, with channels in ``modalities`` order."""
    if layout == "mslesseg-train":
        return mslesseg_train_scans(src, parse_modalities(modalities), require_masks=False)
    if layout == "mslesseg-test":
        return mslesseg_test_scans(src, parse_modalities(modalities))
    if layout == "msseg2":
        if modalities is not None and [m.lower() for m in modalities] != list(MSSEG2_CHANNELS):
            raise UserError(f"modalities: MSSEG-2 inputs have channels "
                            f"{', '.join(MSSEG2_CHANNELS)}, got {', '.join(modalities)}")
        return [msseg2_patient_scan(p, None, "test") for p in msseg2_patient_dirs(src)]
    if layout == "isbi2015":
        return isbi_folder_scans(src, parse_modalities(modalities, ISBI_MODALITIES), None, "test")
    if layout == "msseg2016":
        return msseg2016_folder_scans(src, parse_modalities(modalities, MSSEG2016_MODALITIES),
                                      None, "test")
    if layout == "3dmrms":
        return mrms_folder_scans(src, modalities, with_labels=False)[0]
    return nnunet_input_scans(src, None if modalities is None else len(modalities))


def place_inputs(scan: Scan, out_dir: Path) -> dict:
    """Check one scan (geometry, every channel decoded whole) and link its channels into
    ``out_dir``; return its entry."""
    digests = check_geometry(scan)
    for index, path in enumerate(scan.images.values()):
        place_image(path, out_dir / f"{scan.case_id}_{index:04d}{FILE_ENDING}", allow_symlink=True)
    return case_entry(scan, digests)


def prepare_prediction_inputs(src: Path, out_dir: Path,
                              modalities: list[str] | None = None) -> dict:
    """Write nnU-Net-named inputs for every case of ``src`` into ``out_dir``.

    Layouts: an MSLesSeg test folder (``P{n}/P{n}_{MOD}.nii.gz``), an MSLesSeg
    training-style folder (``P{n}/T{k}/...``), an MSSEG-2 patients folder
    (``<id>/flair_time0{1,2}_on_middle_space.nii.gz``), an ISBI 2015 subset
    folder (``test01/preprocessed/...``), an MSSEG-2016 subset folder
    (``Center_NN/Patient_NN/Preprocessed_Data/...``), a 3D-MR-MS folder
    (``patientNN/``) or an nnU-Net input folder (``{case}_{XXXX}.nii.gz``; when
    it is the imagesTr/imagesTs of a dataset written by ``mslesseg convert``,
    masks are written back in that dataset's source naming, from its
    ``case_map.json``). Channels are linked (hardlink, else symlink, else
    copy; ``.nii`` gzipped as is), never rewritten.

    Parameters
    ----------
    modalities : channel order for MSLesSeg (default FLAIR, T1, T2); for nnU-Net
        folders only the channel count is used; MSSEG-2 is always time01, time02.

    Returns
    -------
    {case id: entry} where ``entry["reference_image"]`` is the source file whose
    header the output mask must carry and ``entry["output"]`` the mask's path
    relative to the output root: ``P54/P54_MASK.nii.gz`` (MSLesSeg test),
    ``P1/T1/P1_T1_MASK.nii.gz`` (MSLesSeg training style),
    ``013/segmentation.nii.gz`` (MSSEG-2), ``test01/masks/test01_01_mask.nii``
    (ISBI 2015), ``Testing/Center_03/Patient_01/segmentation.nii.gz`` (MSSEG-2016),
    ``patient07/<consensus mask name>`` (3D-MR-MS), ``{case}.nii.gz`` (nnU-Net).
    """
    src, out_dir = Path(src), Path(out_dir)
    layout = detect_layout(src)
    scans = input_scans(src, layout, modalities)
    if not scans:
        raise UserError(f"{src}: no case found ({layout} layout)")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir}: folder for nnU-Net inputs is not empty")
    with atomic_dir(out_dir) as tmp:
        entries = map_with_progress(place_inputs, [(s, tmp) for s in scans], 1,
                                    f"inputs {src.name}")
    cases = {s.case_id: {**e, "layout": layout} for s, e in zip(scans, entries)}
    if layout == "nnunet" and src.name in ("imagesTr", "imagesTs") and \
            (src.parent / CASE_MAP).is_file():
        source = load_case_map(src.parent)
        for case, entry in cases.items():
            if case in source:
                entry.update(output=source[case]["output"],
                             reference_image=source[case]["reference_image"])
    return cases
