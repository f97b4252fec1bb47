"""The nnU-Net environment variables our commands need, and where our trainers live."""
from __future__ import annotations

import os
from pathlib import Path

NNUNET_DIRS = {
    "nnUNet_raw": "nnUNet_raw",
    "nnUNet_preprocessed": "nnUNet_preprocessed",
    "nnUNet_results": "nnUNet_results",
}
DEFAULT_ROOT = Path.home() / "mslesseg_nnunet_data"


def trainers_dir() -> Path:
    """The installed folder holding our trainer modules (for ``nnUNet_extTrainer``)."""
    import mslesseg_nnunet.trainers as trainers

    return Path(trainers.__file__).resolve().parent


def nnunet_environment(root: Path | None = None, environ: dict | None = None) -> dict[str, str]:
    """The four nnU-Net variables: existing values are kept, missing ones go under ``root``.

    ``nnUNet_extTrainer`` always contains our trainers folder (prepended to any
    existing value).
    """
    environ = os.environ if environ is None else environ
    root = Path(root or environ.get("MSLESSEG_ROOT") or DEFAULT_ROOT).expanduser().resolve()
    env = {var: environ.get(var) or str(root / sub) for var, sub in NNUNET_DIRS.items()}
    ours = str(trainers_dir())
    existing = [p for p in environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p and p != ours]
    env["nnUNet_extTrainer"] = os.pathsep.join([ours, *existing])
    return env


def apply_nnunet_environment(root: Path | None = None) -> dict[str, str]:
    """Set the nnU-Net variables in this process (and its children); create the folders.
    """
    env = nnunet_environment(root)
    os.environ.update(env)
    for var in NNUNET_DIRS:
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    return env


def export_lines(env: dict[str, str]) -> str:
    """Shell ``export`` lines for ``eval "$(mslesseg env)"``."""
    import shlex

    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())
