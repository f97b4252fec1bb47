"""Write outputs so that nothing is ever half-written.

Files go to a temporary sibling and are renamed into place; whole output
folders are built in a temporary sibling folder and renamed at the end.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from mslesseg_nnunet.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_can_write(path: Path, overwrite: bool) -> None:
    """Raise UserError if ``path`` exists (and is not empty) without ``overwrite``,
    or if its parent folder cannot be created or written."""
    path = Path(path)
    if path.exists() and not overwrite:
        if path.is_dir() and not any(path.iterdir()):
            pass
        else:
            raise UserError(f"{path}: already exists (use --overwrite to replace it)")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{parent}: cannot create folder ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise UserError(f"{parent}: folder is not writable")


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary name keeps the full suffix (``.nii.gz``) so that writers that
    choose a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + path.name, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path``.

    On any exception the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    check_can_write(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
