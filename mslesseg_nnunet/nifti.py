"""Geometry-preserving NIfTI I/O.

Every reader returns the array together with the header it came from, and
every writer reuses that header so that affine, qform/sform codes and
pixel dimensions are kept bit for bit; only the data type changes when asked.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from zlib_ng import zlib_ng

from mslesseg_nnunet.atomic import atomic_file
from mslesseg_nnunet.errors import UserError


@dataclass
class Volume:
    """A voxel array (in the file's own axis order) and the header it belongs to."""

    data: np.ndarray
    header: nib.Nifti1Header

    @property
    def affine(self) -> np.ndarray:
        return self.header.get_best_affine()

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(z) for z in self.header.get_zooms()[:3])

    @property
    def voxel_volume(self) -> float:
        return float(np.prod(np.asarray(self.header.get_zooms()[:3], dtype=np.float64)))


def read_header(path: Path) -> nib.Nifti1Header:
    """Read only the header of a NIfTI file (no voxel data)."""
    try:
        return nib.load(str(path)).header
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except Exception as exc:  # nibabel raises many types for broken files
        raise UserError(f"{path}: not a readable NIfTI file ({_one_line(exc)})") from None


_CHUNK = 1 << 20


def _inflate(raw: bytes, keep: bool) -> tuple[bytes, int]:
    """Inflate every gzip member of ``raw`` to its end, in chunks (zlib checks each member's
    CRC and length); return the inflated bytes (only the first ones, enough for the header,
    unless ``keep``) and the inflated length."""
    kept, size, rest = [], 0, memoryview(raw)
    while len(rest) and any(rest):  # gzip members until the end (zero padding allowed)
        inflater = zlib_ng.decompressobj(31)
        for start in range(0, len(rest), _CHUNK):
            out = inflater.decompress(rest[start:start + _CHUNK])
            size += len(out)
            if keep or sum(map(len, kept)) < 2048:
                kept.append(out)
            if inflater.eof:
                break
        if not inflater.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        rest = memoryview(inflater.unused_data + rest[start + _CHUNK:].tobytes())
    return b"".join(kept), size


def _checked(path: Path, keep: bool) -> tuple[nib.Nifti1Header, bytes, str]:
    """The header, the file's data (inflated; only its start unless ``keep``) and the
    sha256 of the file's bytes.

    The whole file is read once: a gzip stream is inflated to its end and its CRC and
    length checked, and the data must be as long as the header says; else UserError
    naming the file (nibabel and SimpleITK would zero-fill or stop early without a word)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    digest = hashlib.sha256(raw).hexdigest()
    try:
        data, size = _inflate(raw, keep) if raw[:2] == b"\x1f\x8b" else (raw, len(raw))
    except (EOFError, zlib_ng.error) as exc:
        raise UserError(f"{path}: truncated or corrupt gzip stream ({_one_line(exc)})") from None
    for kind in (nib.Nifti1Header, nib.Nifti2Header):
        try:
            header = kind.from_fileobj(io.BytesIO(data))
            break
        except Exception as exc:  # nibabel raises many types for broken files
            error = exc
    else:
        raise UserError(f"{path}: not a readable NIfTI file ({_one_line(error)})") from None
    needed = int(header.get_data_offset()) + int(np.prod(header.get_data_shape(), dtype=np.int64)
                                                 ) * header.get_data_dtype().itemsize
    if size < needed:
        raise UserError(f"{path}: truncated NIfTI file ({size} of {needed} bytes)")
    return header, data, digest


def verify_image(path: Path) -> str:
    """Check that ``path`` is whole (``_checked``, nothing kept); return the sha256 of its bytes."""
    return _checked(path, keep=False)[2]


def read_volume(path: Path, dtype: np.dtype | None = None) -> Volume:
    """Read a NIfTI file, verified whole (``_checked``); raise UserError naming the file
    if it is unreadable, truncated or not 3D."""
    header, data, _ = _checked(path, keep=True)
    try:
        kind = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        img = kind.from_bytes(data)
        array = np.asanyarray(img.dataobj)
        if dtype is not None:
            array = array.astype(dtype, copy=False)
    except Exception as exc:
        raise UserError(f"{path}: unreadable NIfTI data ({_one_line(exc)})") from None
    if array.ndim != 3:
        raise UserError(f"{path}: expected a 3D image, got shape {array.shape}")
    return Volume(np.asarray(array), img.header)


def write_volume(path: Path, data: np.ndarray, header: nib.Nifti1Header,
                 dtype: np.dtype | None = None) -> None:
    """Write ``data`` with the geometry of ``header`` (affine and codes kept exactly).

    ``dtype`` sets the on-disk type (default: the array's type). Scaling
    (scl_slope/inter) is reset so stored values equal the array's values.
    The file appears atomically.
    """
    dtype = np.dtype(dtype or data.dtype)
    hdr = header.copy()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(data.shape)
    if tuple(header.get_data_shape()) == tuple(data.shape):
        hdr["pixdim"] = header["pixdim"]  # set_data_shape resets unused pixdim entries
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), None, hdr)
    # Nifti1Image(affine=None) keeps the header's qform/sform untouched.
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_file(Path(path)) as tmp:
        nib.save(img, str(tmp))


def make_header(affine: np.ndarray, qform_code: int, sform_code: int) -> nib.Nifti1Header:
    """A fresh NIfTI-1 header carrying ``affine`` with the given qform/sform codes."""
    hdr = nib.Nifti1Header()
    hdr.set_qform(affine, code=int(qform_code))
    hdr.set_sform(affine, code=int(sform_code))
    hdr.set_xyzt_units("mm", "sec")
    return hdr


def same_geometry(a: nib.Nifti1Header, b: nib.Nifti1Header, atol: float = 1e-5) -> bool:
    """True when two headers describe the same voxel grid (shape and affine)."""
    return (tuple(a.get_data_shape()[:3]) == tuple(b.get_data_shape()[:3])
            and np.allclose(a.get_best_affine(), b.get_best_affine(), atol=atol))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
