"""Provenance of a preprocessed case: inputs' sha256, versions, parameters, metrics, and the
native FLAIR header (so that ``to-native`` needs nothing but the output folder)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import platform
from pathlib import Path

import nibabel as nib

from mslesseg_nnunet.errors import UserError

PROVENANCE = "provenance.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict:
    """Versions of the packages that shape the result."""
    from mslesseg_nnunet.ensembles.folder import package_versions

    names = ("mslesseg-nnunet", "SimpleITK", "nibabel", "numpy", "scipy", "nilearn")
    return {"python": platform.python_version(), **package_versions(names)}


def encode_header(header: nib.Nifti1Header) -> str:
    """The 348-byte NIfTI-1 header as base64 text."""
    buffer = io.BytesIO()
    nib.Nifti1Header.from_header(header).write_to(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_header(text: str) -> nib.Nifti1Header:
    return nib.Nifti1Header.from_fileobj(io.BytesIO(base64.b64decode(text)))


def read_provenance(folder: Path) -> dict:
    """The provenance of a ``mslesseg preprocess`` output folder."""
    path = Path(folder) / PROVENANCE
    if not path.is_file():
        raise UserError(f"--preprocessed {folder}: no {PROVENANCE} (not a `mslesseg preprocess` "
                        "output folder)")
    return json.loads(path.read_text())
