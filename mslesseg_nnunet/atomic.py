"""Write outputs so that nothing is ever half-written, lost, or written twice at once.

Files go to a temporary sibling and are renamed into place. A whole output
folder is built in a staging sibling ``.tmp-PID-*-NAME``; when complete, the
old folder (if any) is renamed aside to ``.old-PID-*-NAME``, the new one renamed
in, and only then the old one removed: a crash at any point leaves the old or
the new folder whole (a rerun puts a set-aside old folder back if the new one
never arrived, and removes the staging folders of dead runs). While a folder is
being replaced, ``.lock-NAME`` (created exclusively, holding the owner's pid)
claims it, so a second concurrent run is refused instead of silently racing.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

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


def check_no_overlap(output: Path, inputs: Iterable[Path | None], option: str = "-o") -> None:
    """Raise UserError when ``output`` is, holds or lies inside one of ``inputs``
    (checked before anything is deleted, with or without --overwrite)."""
    out = Path(output).resolve()
    for given in inputs:
        if given is None:
            continue
        path = Path(given).resolve()
        if out == path or out in path.parents or path in out.parents:
            raise UserError(f"{option} {output}: overlaps the input {given} (choose another "
                            "output folder)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging(kind: str, name: str) -> dict:
    """Prefix and suffix of a staging name ``.KIND-PID-RANDOM-NAME`` (tempfile's arguments)."""
    return {"prefix": f".{kind}-{os.getpid()}-", "suffix": f"-{name}"}


def _dead_staging(entry: Path, kind: str) -> str | None:
    """The NAME of a staging entry ``.KIND-PID-RANDOM-NAME`` whose run is dead, else None."""
    parts = entry.name.split("-", 3)
    if len(parts) != 4 or parts[0] != f".{kind}" or not parts[1].isdigit():
        return None
    return None if _pid_alive(int(parts[1])) else parts[3]


def clean_stale(folder: Path, recursive: bool = False) -> None:
    """Remove the staging files and folders (``.tmp-PID-*``) that dead runs left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in list(folder.rglob(".tmp-*") if recursive else folder.glob(".tmp-*")):
        if _dead_staging(entry, "tmp") is not None:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()


@contextlib.contextmanager
def claim(path: Path) -> Iterator[None]:
    """Hold ``.lock-NAME`` next to ``path`` (exclusive create) for the duration; raise
    UserError if a live process holds it (a dead owner's lock is taken over)."""
    path = Path(path)
    lock = path.parent / f".lock-{path.name}"
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                owner = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and _pid_alive(owner):
                raise UserError(f"{path}: in use by another run (process {owner}; if there is "
                                f"none, remove {lock})") from None
            lock.unlink(missing_ok=True)
    else:
        raise UserError(f"{lock}: cannot claim {path}")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def recover(path: Path) -> None:
    """Undo what dead runs left next to ``path``: put back a set-aside old folder whose
    replacement never arrived, remove other set-aside and staging folders."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for entry in sorted(path.parent.glob(f".old-*-{path.name}")):
        if _dead_staging(entry, "old") == path.name:
            if not path.exists():
                os.replace(entry, path)
            else:
                shutil.rmtree(entry, ignore_errors=True)
    clean_stale(path.parent)


def replace_dir(new: Path, path: Path) -> None:
    """Swap folder ``new`` in at ``path``: the old one set aside by a rename, the new one
    renamed in, then the old one removed (a crash leaves one of them whole in place or
    set aside for ``recover``)."""
    if path.is_file() or path.is_symlink():
        path.unlink()
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(**_staging("old", path.name), dir=path.parent))
        os.replace(path, old)
    os.replace(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staging_dir(parent: Path, name: str) -> Iterator[Path]:
    """A scratch folder ``parent/.tmp-PID-*-NAME``, removed on exit (and by ``clean_stale``
    on the next run if this process is killed)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(parent)
    tmp = Path(tempfile.mkdtemp(**_staging("tmp", name), dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary name keeps the full suffix (``.nii.gz``) so that writers that
    choose a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(**_staging("tmp", path.name), dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: Path, data) -> None:
    """Write ``data`` as indented JSON, atomically; NaN is written as ``null`` (valid JSON)."""
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(json.dumps(_nan_to_none(data), indent=2) + "\n")


def _nan_to_none(obj):
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


@contextlib.contextmanager
def atomic_dir(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder next to ``path``; on success it replaces ``path`` (``replace_dir``).

    ``path`` is claimed for the whole block (a concurrent run is refused) and
    checked for existence under the claim. On any exception the staging folder
    is removed and ``path`` is untouched.
    """
    path = Path(path)
    check_can_write(path, overwrite)
    with claim(path):
        recover(path)
        check_can_write(path, overwrite)
        tmp = Path(tempfile.mkdtemp(**_staging("tmp", path.name), dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        try:
            yield tmp
            replace_dir(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
