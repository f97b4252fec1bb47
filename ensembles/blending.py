"""Which sliding-window blending each model of ``mslesseg predict`` uses, and the oracle's labels.

Blendings (docs/cib.md):

- ``gaussian``: nnU-Net's own (Gaussian-weighted logits), stock ``nnUNetPredictor``;
- ``average``: paper eq. 1 with alpha_i = 1, the mean of the windows' probabilities;
- ``cib-patch`` / ``cib-grid``: eq. 1 / eq. 2 with the CIB heads' predicted Dice of
  each window / each of its 2x2x2 cells as weights (models trained with CIB heads);
- ``oracle-patch`` / ``oracle``: the same with the *true* Dice of each window / cell
  against the ground truth (the paper's Table 1 study; any model).

The predictor itself is ``blending_predictor.BlendingPredictor``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mslesseg_nnunet.errors import UserError

BLENDINGS = ("gaussian", "average", "cib-patch", "cib-grid", "oracle-patch", "oracle")
HEAD_BLENDINGS = ("cib-patch", "cib-grid")
ORACLE_BLENDINGS = ("oracle-patch", "oracle")
CIB_DEFAULT = "cib-grid"
HEADS_PREFIX = "cib_heads."


def has_cib_heads(checkpoint: Path) -> bool:
    """Whether a checkpoint's network holds CIB heads (read lazily: the weights stay on disk)."""
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)["network_weights"]
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        reason = " ".join(str(exc).split(". ")[0].split()) or type(exc).__name__
        raise UserError(f"{checkpoint}: not a readable checkpoint ({reason})") from None
    return any(key.startswith(HEADS_PREFIX) for key in state)


def choose_blending(model_dir: Path, checkpoint: Path, requested: str | None, regions: bool) -> str:
    """``requested``, or the model's own (``cib-grid`` with CIB heads, else ``gaussian``);
    a ``cib-*`` blending for a model without heads, or any but ``gaussian`` for
    region-based models, is a UserError naming the model."""
    heads = has_cib_heads(checkpoint)
    blending = requested or (CIB_DEFAULT if heads else "gaussian")
    if blending in HEAD_BLENDINGS and not heads:
        raise UserError(f"{model_dir}: --blending {blending} needs a model trained with CIB heads "
                        "(nnUNetTrainerCIB...); this one has none")
    if blending != "gaussian" and regions:
        raise UserError(f"{model_dir}: --blending {blending} supports label-based models only "
                        "(this dataset.json defines regions)")
    return blending


def check_oracle(blendings: Sequence[str], oracle_gt: Path | None) -> None:
    """``--oracle-gt`` is given exactly when some model blends with an oracle."""
    oracle = any(b in ORACLE_BLENDINGS for b in blendings)
    if oracle and oracle_gt is None:
        raise UserError("--blending oracle needs the ground truth: --oracle-gt DIR")
    if oracle_gt is not None and not oracle:
        raise UserError("--oracle-gt: only used with --blending oracle or oracle-patch")


def oracle_label_files(gt_dir: Path, cases: Sequence[str]) -> dict[str, str]:
    """The ground-truth mask of each nnU-Net case id, found in ``gt_dir`` the way
    ``mslesseg evaluate`` pairs masks (MSLesSeg, MSSEG-2 or nnU-Net layouts)."""
    from mslesseg_nnunet.evaluation.pairing import find_masks, source_case_id

    masks = find_masks(Path(gt_dir))
    missing = [c for c in cases if source_case_id(c) not in masks]
    if missing:
        raise UserError(f"--oracle-gt {gt_dir}: no ground truth for case {source_case_id(missing[0])}"
                        f" ({len(missing)} of {len(cases)} cases missing)")
    return {c: str(masks[source_case_id(c)]) for c in cases}
