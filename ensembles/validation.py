"""Cross-validation predictions of trained models, loaded once for parameter tuning.

A model folder ``.../DatasetX/TRAINER__PLANS__CONFIG`` holds
``fold_K/validation/{case}.npz`` (``nnUNetv2_train ... --npz``). Models are
grouped by labelling (binary / msl / dbl) and averaged per case within a group;
cases are paired across datasets by case id. The reference is the dataset's
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
from mslesseg_nnunet.nifti import read_volume
from mslesseg_nnunet.ensembles.fusion import RunningMean
from mslesseg_nnunet.ensembles.members import Member, labelling_kind, model_info, open_member
from mslesseg_nnunet.postprocessing.search import TuneCase


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


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Smallest box holding every true voxel (the whole array when none is)."""
    if not mask.any():
        return tuple(slice(0, 1) for _ in mask.shape)
    slices = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        slices.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(slices)


def model_probability(model: ValidationModel, case: str) -> np.ndarray:
    """A model's lesion probability for ``case`` (mean over the folds that validated it)."""
    acc = RunningMean()
    for member in model.cases[case]:
        acc.add(member.read(case)[0])
    return acc.mean()


def load_case(models: Sequence[ValidationModel], case: str, rule: str,
              min_threshold: float) -> TuneCase:
    """Group means and reference of one case, cropped to where any setting can put lesion."""
    sums: dict[str, RunningMean] = {}
    for model in models:
        sums.setdefault(model.kind if rule == "madseg" else "all", RunningMean()).add(
            model_probability(model, case))
    groups = {name: acc.mean() for name, acc in sums.items()}
    ref_path = reference_path(models[0].folder, case)
    ref = read_volume(ref_path)
    shape = next(iter(groups.values())).shape
    if ref.data.shape != shape:
        raise UserError(f"{ref_path}: shape {ref.data.shape} differs from the predicted {shape}")
    reference = np.isin(ref.data, models[0].lesion_labels)
    # Every setting's mask lies where some group exceeds the lowest threshold tried.
    box = bounding_box(reference | (np.maximum.reduce(list(groups.values())) >= min_threshold - 1e-6))
    return TuneCase(case, {k: np.ascontiguousarray(v[box]) for k, v in groups.items()},
                    np.ascontiguousarray(reference[box]), ref.spacing)


def load_validation(model_dirs: Sequence[Path], folds: Sequence[int] | None,
                    min_threshold: float) -> tuple[list[ValidationModel], str, list[TuneCase]]:
    """Open the models, choose the rule and load every common case once."""
    models = [open_model(Path(d), folds) for d in model_dirs]
    rule = tune_rule(models)
    cases = common_validation_cases(models)
    for case in cases:  # fail before the long load when a reference is missing
        reference_path(models[0].folder, case)
    loaded = [load_case(models, case, rule, min_threshold)
              for case in tqdm(cases, desc="load", unit="case")]
    return models, rule, loaded
