"""Fast, memory-lean reading of nnU-Net ``.npz`` probability files.

``numpy.load`` inflates the whole ``probabilities`` array; here the archive
member is inflated channel by channel and only the channels asked for are
summed, so a four-class map costs one channel of memory. zlib releases the
GIL, so several files can be inflated in parallel threads.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from mslesseg_nnunet.errors import UserError


def read_bytes(path: Path) -> tuple[bytes, str]:
    """The raw bytes of ``path`` and their sha256 hex digest."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    return data, hashlib.sha256(data).hexdigest()


def sum_channels(data: bytes, key: str, channels: Sequence[int] | None, source: Path) -> np.ndarray:
    """Sum of ``channels`` of the array ``key`` stored in npz bytes ``data`` (float32).

    ``channels=None`` reads the array whole (any number of dimensions).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open(f"{key}.npy") as stream:
            shape, fortran, dtype = _read_header(stream)
            if fortran:
                raise ValueError("Fortran-ordered arrays are not supported")
            if channels is None:
                return _read_into(stream, dtype, shape).astype(np.float32, copy=False)
            return _sum_channel_stream(stream, dtype, shape, channels, source)
    except KeyError:
        raise UserError(f"{source}: no {key!r} array in this .npz file") from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise UserError(f"{source}: unreadable .npz file ({exc})") from None


def array_shape(path: Path, key: str) -> tuple[int, ...]:
    """Shape of the array ``key`` in an npz file, inflating only its header."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as stream:
            return tuple(_read_header(stream)[0])
    except KeyError:
        raise UserError(f"{path}: no {key!r} array in this .npz file") from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise UserError(f"{path}: unreadable .npz file ({exc})") from None


def _read_header(stream) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f"unsupported .npy format version {version}")


def _read_into(stream, dtype: np.dtype, shape: tuple) -> np.ndarray:
    out = np.empty(shape, dtype=dtype)
    view = memoryview(out.reshape(-1).view(np.uint8))
    filled = 0
    while filled < len(view):
        chunk = stream.read(min(len(view) - filled, 1 << 24))
        if not chunk:
            raise EOFError("file ends before the array does")
        view[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    return out


def _sum_channel_stream(stream, dtype: np.dtype, shape: tuple, channels: Sequence[int],
                        source: Path) -> np.ndarray:
    if len(shape) != 4:
        raise UserError(f"{source}: expected probabilities of shape (classes, z, y, x), got {shape}")
    wanted = set(channels)
    if max(wanted) >= shape[0]:
        raise UserError(f"{source}: has {shape[0]} classes but label {max(wanted)} is needed")
    total = None
    for channel in range(max(wanted) + 1):
        block = _read_into(stream, dtype, shape[1:])
        if channel not in wanted:
            continue
        block = block.astype(np.float32, copy=False)
        total = block if total is None else np.add(total, block, out=total)
    return total
