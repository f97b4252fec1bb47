"""Fault injection helpers: kill a command at a moment, compare folders byte for byte."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` (hidden ones included)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_or_kill(args: list, env: dict, after: float | None, when: Path | None = None
                ) -> subprocess.Popen:
    """Run ``args`` to its end; with ``after``, SIGKILL its whole process group that many
    seconds after it started (or after ``when`` appeared, if it appears)."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    if after is None:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        return proc
    while when is not None and not when.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(after)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # already finished
        pass
    proc.wait()
    return proc
