"""Fusion and postprocessing parameters, and their JSON form (``tuned.json``)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from mslesseg_nnunet.atomic import write_json
from mslesseg_nnunet.components import LESION_CONNECTIVITY, check_connectivity
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import check_finite, is_finite_number
from mslesseg_nnunet.postprocessing.components import SIZE_UNITS
from mslesseg_nnunet.postprocessing.threshold import check_probability

RULES = ("mean", "madseg", "union", "staple")
CV_DICE = "cv-dice"  # --weights: each model's mean CV Dice (MSUniCaTeam)


@dataclass(frozen=True)
class PostprocessingParams:
    """How member probabilities become one mask.

    Attributes
    ----------
    rule : "mean" (weighted mean of all members), "madseg" (MSL/DBL fusion), "union"
        (voxelwise maximum: the union of the members' masks at ``threshold``) or "staple"
        (STAPLE probability of the members' masks, each member's probability > 0.5).
    threshold : lesion where the (fused) probability is strictly above this.
    min_size : a component is kept when strictly larger than this (in ``size_unit``), as
        Anima's minimum lesion volume and the MSSEG-2 nnU-Net team's "> 4 mm3"; 0 keeps all.
    size_unit : "voxels" or "mm3", for ``min_size`` and ``volume_threshold``.
    connectivity : 6, 18 or 26, for every component operation.
    mix : MadSeg weight of the MSL ensemble (DBL gets ``1 - mix``).
    prob_threshold : MadSeg: small fused components need this maximum probability.
    volume_threshold : MadSeg: size separating small fused from large DBL components.
    """

    rule: str = "mean"
    threshold: float = 0.5
    min_size: float = 0.0
    size_unit: str = "voxels"
    connectivity: int = LESION_CONNECTIVITY
    mix: float = 0.5
    prob_threshold: float = 0.7
    volume_threshold: float = 1000.0

    def __post_init__(self):
        if self.rule not in RULES:
            raise UserError(f"--rule: must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.size_unit not in SIZE_UNITS:
            raise UserError(f"size_unit: must be one of {', '.join(SIZE_UNITS)}, got {self.size_unit!r}")
        for name in ("threshold", "min_size", "mix", "prob_threshold", "volume_threshold"):
            check_finite(getattr(self, name), name)
        for name in ("threshold", "mix", "prob_threshold"):
            check_probability(getattr(self, name), name)
        for name in ("min_size", "volume_threshold"):
            if float(getattr(self, name)) < 0:
                raise UserError(f"{name}: must not be negative, got {getattr(self, name)}")
        check_connectivity(self.connectivity)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "PostprocessingParams":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict, source: str = "parameters") -> "PostprocessingParams":
        """Build from a dict (unknown keys are an error naming ``source``)."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise UserError(f"{source}: unknown parameter(s) {', '.join(unknown)}")
        casts = {"rule": str, "size_unit": str, "connectivity": int}
        try:
            values = {k: casts.get(k, float)(v) for k, v in data.items()}
        except (TypeError, ValueError) as exc:
            raise UserError(f"{source}: bad parameter value ({exc})") from None
        return cls(**values)


def load_params(path: Path) -> PostprocessingParams:
    """Read parameters from ``tuned.json`` (``{"params": {...}, ...}``) or a flat JSON dict."""
    data = read_json_object(path)
    params = data.get("params", data)
    if not isinstance(params, dict):
        raise UserError(f"{path}: 'params' must be a JSON object")
    return PostprocessingParams.from_dict(params, source=str(path))


def load_members(path: Path) -> list[dict] | None:
    """The members chosen by ``mslesseg tune`` (``{"model": key, "weight": w}`` each), or None
    when ``path`` names none (every given member is used)."""
    members = read_json_object(path).get("members")
    if members is None:
        return None
    if not isinstance(members, list) or not all(
            isinstance(m, dict) and isinstance(m.get("model"), str)
            and is_finite_number(m.get("weight", 1.0)) for m in members):
        raise UserError(f"{path}: 'members' must be a list of {{\"model\": ..., \"weight\": ...}}")
    return members


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``; UserError naming the file otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def save_params(path: Path, params: PostprocessingParams, **extra) -> None:
    """Write ``{"params": {...}, **extra}`` atomically."""
    write_json(path, {"params": params.to_dict(), **extra})
