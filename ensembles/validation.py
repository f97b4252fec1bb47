"""Cross-validation predictions of trained models, loaded once for parameter tuning.

A model folder ``.../DatasetX/TRAINER__PLANS__CONFIG`` holds
``fold_K/validation/{case}.npz`` (``nnUNetv2_train ... --npz``). Every model's
probability of a case is kept (cropped) so that any rule, weighting or subset
of the models can be fused from it; cases are paired across datasets by case id. The reference is the dataset's
``gt_segmentations`` (or raw ``labelsTr``), collapsed with ``lesion_labels``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from mslesseg_nnunet.dataset_json import lesion_labels, load_dataset_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.evaluation.boxes import bounding_box
from mslesseg_nnunet.nifti import read_volume
from mslesseg_nnunet.ensembles.fusion import STAPLE_MEMBER_THRESHOLD, RunningMean, accumulator
from mslesseg_nnunet.ensembles.members import Member, labelling_kind, model_info, open_member
from mslesseg_nnunet.postprocessing.rules import group_of
from mslesseg_nnunet.evaluation.voxel_metrics import dice
from mslesseg_nnunet.tuning.search import TuneCase


@dataclass
class ValidationModel:
    """A trained model's validation outputs: the member folder(s) holding each case."""

    folder: Path
    kind: str
    lesion_labels: list[int]
    cases: dict[str, list[Member]]

    def describe(self) -> dict:
        return {"folder": str(self.folder), "kind": self.kind, **model_info(self.folder),
                "folds": sorted({m.info["folds"][0] for ms in self.cases.values() for m in ms})}


def fold_folders(model_dir: Path, folds: Sequence[int] | None) -> list[Path]:
    """``fold_K/validation`` folders of the requested folds (default: all present)."""
    if folds is None:
        found = sorted(p / "validation" for p in model_dir.glob("fold_*") if (p / "validation").is_dir())
        if not found:
            raise UserError(f"{model_dir}: no fold_K/validation folders (train with nnUNetv2_train ... --npz)")
        return found
    paths = [model_dir / f"fold_{k}" / "validation" for k in folds]
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path}: folder not found (missing fold; run nnUNetv2_train with --npz)")
    return paths


def open_model(model_dir: Path, folds: Sequence[int] | None) -> ValidationModel:
    """Index a model's validation predictions by case."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: model folder not found")
    dataset_json = load_dataset_json(model_dir / "dataset.json")
    cases: dict[str, list[Member]] = {}
    for folder in fold_folders(model_dir, folds):
        member = open_member(folder)
        if not member.cases():
            raise UserError(f"{folder}: no .npz files (run nnUNetv2_train ... --val --npz)")
        for case in member.cases():
            cases.setdefault(case, []).append(member)
    return ValidationModel(model_dir, labelling_kind(dataset_json, model_dir / "dataset.json"),
                           lesion_labels(dataset_json), cases)


def common_validation_cases(models: Sequence[ValidationModel]) -> list[str]:
    """Case ids validated by every model (pairing datasets by case id)."""
    reference = set(models[0].cases)
    for model in models[1:]:
        differ = sorted(reference ^ set(model.cases))
        if differ:
            raise UserError(f"{model.folder}: validation cases differ from {models[0].folder} "
                            f"(e.g. {differ[0]!r}); use the same folds and source data")
    return sorted(reference)


def tune_rule(models: Sequence[ValidationModel]) -> str:
    """"madseg" when the models are exactly MSL and DBL ones, else "mean"."""
    return "madseg" if {m.kind for m in models} == {"msl", "dbl"} else "mean"


def reference_path(model_dir: Path, case: str, file_ending: str = ".nii.gz") -> Path:
    """Ground truth of ``case`` for the dataset the model was trained on."""
    name = model_dir.parent.name
    candidates = [Path(os.environ[var]) / name / sub / f"{case}{file_ending}"
                  for var, sub in (("nnUNet_preprocessed", "gt_segmentations"),
                                   ("nnUNet_raw", "labelsTr")) if os.environ.get(var)]
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(f"case {case}: no ground truth in $nnUNet_preprocessed/{name}/gt_segmentations "
                    f"or $nnUNet_raw/{name}/labelsTr")


def model_probability(model: ValidationModel, case: str) -> np.ndarray:
    """A model's lesion probability for ``case`` (mean over the folds that validated it)."""
    acc = RunningMean()
    for member in model.cases[case]:
        acc.add(member.read(case)[0])
    return acc.mean()


def read_reference(model: ValidationModel, case: str, shape: tuple[int, ...]):
    """The lesion mask of ``case`` (bool) and its spacing; its shape must be ``shape``."""
    ref_path = reference_path(model.folder, case)
    ref = read_volume(ref_path)
    if ref.data.shape != shape:
        raise UserError(f"{ref_path}: shape {ref.data.shape} differs from the predicted {shape}")
    return np.isin(ref.data, model.lesion_labels), ref.spacing


@dataclass
class CaseModels:
    """One CV case: every model's lesion probability and the reference, cropped alike;
    ``outside`` voxels were cut away (no model reaches any threshold tried there)."""

    case: str
    probabilities: list[np.ndarray]
    reference: np.ndarray
    spacing: tuple[float, ...]
    outside: int

    def fuse(self, kinds: Sequence[str], rule: str, subset: Sequence[int],
             weights: Sequence[float]) -> TuneCase:
        """The ``TuneCase`` of the ensemble of the models ``subset`` under ``rule``."""
        sums: dict = {}
        for i in subset:
            sums.setdefault(group_of(kinds[i], rule), accumulator(rule, self.outside)).add(
                self.probabilities[i], weights[i])
        return TuneCase(self.case, {k: acc.value() for k, acc in sums.items()}, self.reference,
                        self.spacing)


def load_case(models: Sequence[ValidationModel], case: str, min_threshold: float) -> CaseModels:
    """Every model's probability of one case and its reference, cropped to where a model
    reaches ``min_threshold`` or the STAPLE member threshold, or the reference has lesion."""
    probabilities = [model_probability(m, case) for m in models]
    reference, spacing = read_reference(models[0], case, probabilities[0].shape)
    low = min(min_threshold, STAPLE_MEMBER_THRESHOLD)
    # Every rule's map lies below the maximum, so every setting's mask lies in the box.
    box = bounding_box(reference | (np.maximum.reduce(probabilities) >= low - 1e-6)) \
        or tuple(slice(0, 1) for _ in reference.shape)
    cropped = [np.ascontiguousarray(p[box]) for p in probabilities]
    return CaseModels(case, cropped, np.ascontiguousarray(reference[box]), spacing,
                      reference.size - cropped[0].size)


def cv_dice(probabilities: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> float:
    """Mean per-case Dice of one model's CV masks (probability > 0.5; cases where both masks
    are empty left out); 0 when no case defines it."""
    scores = [dice(p > STAPLE_MEMBER_THRESHOLD, r) for p, r in zip(probabilities, references)]
    defined = [s for s in scores if not np.isnan(s)]
    return float(np.mean(defined)) if defined else 0.0


def model_cv_dice(model_dir: Path, folds: Sequence[int] | None = None) -> float:
    """``cv_dice`` of a trained model from its ``fold_K/validation`` probabilities."""
    model = open_model(Path(model_dir), folds)
    cases = sorted(model.cases)
    probabilities = [model_probability(model, c) for c in tqdm(cases, desc="cv dice", unit="case")]
    return cv_dice(probabilities, [read_reference(model, c, p.shape)[0]
                                   for c, p in zip(cases, probabilities)])


def open_validation(model_dirs: Sequence[Path],
                    folds: Sequence[int] | None) -> tuple[list[ValidationModel], list[str]]:
    """Open the models and list their common cases (checking every reference is there)."""
    models = [open_model(Path(d), folds) for d in model_dirs]
    cases = common_validation_cases(models)
    for case in cases:  # fail before the long load when a reference is missing
        reference_path(models[0].folder, case)
    return models, cases
