"""One scan of a source dataset and how it becomes nnU-Net files.

Images that are already valid nnU-Net input (``.nii.gz`` on the scan's grid)
are hardlinked, or copied byte for byte: never decoded and recompressed;
uncompressed ``.nii`` images are gzipped as they are (same bytes once inflated).
Labels are checked to be binary, combined by the scan's rule and written as
uint8 with their own header.
"""
from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import read_header, read_volume, same_geometry, verify_image, \
    write_volume

FILE_ENDING = ".nii.gz"
NIFTI_ENDINGS = (".nii.gz", ".nii")


@dataclass
class Scan:
    """A source scan: its channels in nnU-Net channel order and its label sources.

    Attributes
    ----------
    case_id : nnU-Net case identifier (e.g. ``MSLesSeg_P01_T1``).
    patient : patient identifier, used to group folds.
    images : {channel name: source file}, in channel order.
    labels : source mask files (empty when the scan has no ground truth).
    label_rule : "single" (one mask), "majority" (voxel in > half of the masks),
        "union" (in any mask) or "intersection" (in every mask).
    output : relative path of a mask for this scan in the source's own naming.
    info : extra facts recorded in ``case_map.json`` (patient, timepoint, ...).
    """

    case_id: str
    patient: str
    images: dict[str, Path]
    labels: tuple[Path, ...] = ()
    label_rule: str = "single"
    output: str = ""
    info: dict = field(default_factory=dict)

    @property
    def reference_image(self) -> Path:
        """The source file whose header a back-converted mask carries."""
        return self.labels[0] if self.labels else next(iter(self.images.values()))


def link_or_copy(src: Path, dst: Path, allow_symlink: bool = False) -> None:
    """Hardlink ``src`` to ``dst``; else symlink (if allowed); else copy byte for byte."""
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    if allow_symlink:
        try:
            os.symlink(Path(src).resolve(), dst)
            return
        except OSError:
            pass
    try:
        shutil.copyfile(src, dst)
    except OSError as exc:
        raise UserError(f"{src}: cannot copy to {dst} ({exc.strerror})") from None


def place_image(src: Path, dst: Path, allow_symlink: bool = False) -> None:
    """Put source image ``src`` at ``dst`` (a ``.nii.gz`` name): ``.nii.gz`` sources are
    linked or copied (``link_or_copy``), ``.nii`` sources gzip-compressed byte for byte."""
    if str(src).endswith(FILE_ENDING):
        link_or_copy(src, dst, allow_symlink)
        return
    try:
        with open(src, "rb") as raw, gzip.open(dst, "wb", compresslevel=1) as packed:
            shutil.copyfileobj(raw, packed)
    except OSError as exc:
        raise UserError(f"{src}: cannot compress to {dst} ({exc.strerror})") from None


def check_geometry(scan: Scan) -> dict[str, str]:
    """Raise UserError naming the file if a channel or mask is not 3D or not on the
    first channel's grid (shape and affine), or if a channel is truncated or corrupt
    (decoded whole once, ``verify_image``); return {channel: sha256 of its file}."""
    files = [*scan.images.values(), *scan.labels]
    headers = [read_header(p) for p in files]
    for path, header in zip(files, headers):
        if len(header.get_data_shape()) != 3:
            raise UserError(f"{path}: expected a 3D image, got shape {header.get_data_shape()}")
    first, ref = files[0], headers[0]
    for path, header in zip(files[1:], headers[1:]):
        if not same_geometry(ref, header):
            raise UserError(f"{path}: shape {header.get_data_shape()} or affine differs from "
                            f"{first.name} (shape {ref.get_data_shape()})")
    return {name: verify_image(path) for name, path in scan.images.items()}


def read_binary_mask(path: Path) -> np.ndarray:
    """Read a mask that must hold only 0 and 1; return it as uint8."""
    data = read_volume(path).data
    binary = (data == 0) | (data == 1)
    if not binary.all():
        bad = np.unique(data[~binary])[:3]
        raise UserError(f"{path}: mask is not binary (found values {', '.join(map(str, bad))})")
    return data.astype(np.uint8)


def combine_labels(scan: Scan) -> np.ndarray:
    """The scan's uint8 {0,1} label from its mask files and rule."""
    masks = [read_binary_mask(p) for p in scan.labels]
    if scan.label_rule == "single":
        return masks[0]
    votes = np.sum(masks, axis=0, dtype=np.uint16)
    if scan.label_rule == "majority":
        return (2 * votes > len(masks)).astype(np.uint8)
    if scan.label_rule == "union":
        return (votes > 0).astype(np.uint8)
    if scan.label_rule == "intersection":
        return (votes == len(masks)).astype(np.uint8)
    raise ValueError(f"unknown label rule {scan.label_rule!r}")


def write_scan(scan: Scan, images_dir: Path, labels_dir: Path) -> dict:
    """Check a scan and write its nnU-Net files; return its ``case_map.json`` entry."""
    digests = check_geometry(scan)
    label = combine_labels(scan) if scan.labels else None  # masks decoded (verified) first
    for index, path in enumerate(scan.images.values()):
        place_image(path, images_dir / f"{scan.case_id}_{index:04d}{FILE_ENDING}")
    if label is not None:
        labels_dir.mkdir(exist_ok=True)
        write_volume(labels_dir / f"{scan.case_id}{FILE_ENDING}", label,
                     read_header(scan.labels[0]), dtype=np.uint8)
    return case_entry(scan, digests)


def case_entry(scan: Scan, digests: dict[str, str]) -> dict:
    """The JSON-serialisable record of a scan (source files, their sha256 as verified,
    and the back-conversion target)."""
    return {
        "patient": scan.patient,
        **scan.info,
        "images": {name: str(path) for name, path in scan.images.items()},
        "sha256": digests,
        "labels": [str(p) for p in scan.labels],
        "label_rule": scan.label_rule,
        "reference_image": str(scan.reference_image),
        "output": scan.output,
    }
