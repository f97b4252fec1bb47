"""Find the masks of a folder and pair predictions with references by case id.

Recognised layouts (the case id each file gets):

- nnU-Net, flat: ``{case}.nii.gz`` directly in the folder -> ``case``, with
  the converter's ids mapped back to the source ids (``MSLesSeg_P01_T1`` ->
  ``P1_T1``, ``MSLesSeg_P54`` -> ``P54``, ``MSSEG2_013`` -> ``013``), so an
  nnU-Net folder can be scored against a dataset in its own layout;
- MSLesSeg: ``.../P54/P54_MASK.nii.gz`` -> ``P54`` and
  ``.../P1/T1/P1_T1_MASK.nii.gz`` -> ``P1_T1`` (at any depth, so the dataset's
  ``test/`` or ``train/`` folder, or its top folder, can be given);
- MSSEG-2 patient folders: ``.../013/ground_truth.nii.gz`` -> ``013``; in a
  prediction folder, the one mask in ``013/`` -> ``013`` (input images
  ``flair_time0*`` and the experts' ``ground_truth_expert*`` are ignored).

Other files (``_FLAIR``/``_T1``/``_T2`` images, nnU-Net's json files) are ignored.
"""
from __future__ import annotations

import re
from pathlib import Path

from mslesseg_nnunet.vocabulary import MSLESSEG_PREFIX, MSSEG2_PREFIX
from mslesseg_nnunet.errors import UserError

NIFTI = ".nii.gz"
MSLESSEG_MASK = re.compile(r"^(P\d+(?:_T\d+)?)_MASK\.nii\.gz$")
MSSEG2_REFERENCE = "ground_truth.nii.gz"
MSSEG2_NOT_A_MASK = re.compile(r"^(flair_time\d+.*|ground_truth_expert\d+.*)\.nii\.gz$")
MSLESSEG_IMAGE = re.compile(r"^P\d+(?:_T\d+)?_(FLAIR|T1|T2)\.nii\.gz$")
NNUNET_MSLESSEG_ID = re.compile(rf"^{MSLESSEG_PREFIX}_P0*(\d+)(_T\d+)?$")
NNUNET_MSSEG2_ID = re.compile(rf"^{MSSEG2_PREFIX}_(.+)$")


def source_case_id(case: str) -> str:
    """The dataset's own id of an nnU-Net case id written by ``mslesseg convert``."""
    match = NNUNET_MSLESSEG_ID.match(case)
    if match:
        return f"P{int(match.group(1))}{match.group(2) or ''}"
    match = NNUNET_MSSEG2_ID.match(case)
    return match.group(1) if match else case


def _case_of(rel: Path) -> str | None:
    """Case id of a file (path relative to the folder root), or None if not a mask."""
    name = rel.name
    if not name.endswith(NIFTI):
        return None
    match = MSLESSEG_MASK.match(name)
    if match:
        return match.group(1)
    if len(rel.parts) == 1:
        return source_case_id(name[: -len(NIFTI)])
    if name == MSSEG2_REFERENCE:
        return rel.parent.name
    if (len(rel.parts) == 2 and not MSSEG2_NOT_A_MASK.match(name)
            and not MSLESSEG_IMAGE.match(name)):
        return rel.parts[0]
    return None


def find_masks(root: Path, allow_empty: bool = False) -> dict[str, Path]:
    """Map case id -> mask file for every mask under ``root``.

    Raises UserError when ``root`` is not a folder, holds no mask (unless
    ``allow_empty``), or two files claim the same case id.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*" + NIFTI)):
        case = _case_of(path.relative_to(root))
        if case is None:
            continue
        if case in found:
            raise UserError(f"{root}: two masks for case {case}: {found[case]} and {path}")
        found[case] = path
    if not found and not allow_empty:
        raise UserError(f"{root}: no masks found (expected {{case}}.nii.gz files, "
                        "MSLesSeg P*_MASK.nii.gz or MSSEG-2 patient folders)")
    return dict(sorted(found.items()))


FLAIR_PATTERNS = (
    re.compile(r"^(?P<case>P\d+(?:_T\d+)?)_FLAIR\.nii\.gz$"),        # MSLesSeg
    re.compile(r"^(?P<case>.+)_0000\.nii\.gz$"),                       # nnU-Net channel 0
)
MSSEG2_FLAIR = "flair_time02_on_middle_space.nii.gz"  # new lesions are seen on time02


def find_flair_images(root: Path) -> dict[str, Path]:
    """Map case id -> FLAIR image under ``root`` (same case ids as :func:`find_masks`).

    MSLesSeg ``P54_FLAIR.nii.gz``, nnU-Net ``{case}_0000.nii.gz`` (channel 0)
    and MSSEG-2 ``013/flair_time02_on_middle_space.nii.gz`` are recognised.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*" + NIFTI)):
        if path.name == MSSEG2_FLAIR:
            found.setdefault(path.parent.name, path)
            continue
        for pattern in FLAIR_PATTERNS:
            match = pattern.match(path.name)
            if match:
                found.setdefault(source_case_id(match.group("case")), path)
                break
    return found


def pair_cases(pred_root: Path, gt_root: Path,
               missing_as_empty: bool = False) -> list[tuple[str, Path | None, Path]]:
    """(case, prediction or None, reference) for every reference case.

    A reference case with no prediction is an error listing the missing cases,
    unless ``missing_as_empty`` (then its prediction is None: scored as empty).
    Predictions without a reference are ignored.
    """
    refs = find_masks(gt_root)
    preds = find_masks(pred_root, allow_empty=missing_as_empty)
    missing = [case for case in refs if case not in preds]
    if missing and not missing_as_empty:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise UserError(f"{pred_root}: no prediction for reference case(s) {shown} "
                        "(use --missing-as-empty to score them as empty)")
    return [(case, preds.get(case), ref) for case, ref in refs.items()]
