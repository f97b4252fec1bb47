"""Ensemble folders: per-case fused probability (``{case}.npz``), mask (``{case}.nii.gz``)
and the ``ensemble.json`` manifest. Fusing ``mslesseg predict`` outputs keeps their
layout instead: ``probabilities/{case}.npz``, masks in the source's naming (listed
under ``cases`` in the manifest) and ``submission.zip``."""
from __future__ import annotations

import zipfile
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from mslesseg_nnunet.atomic import atomic_dir, atomic_file, check_no_overlap, write_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import check_finite
from mslesseg_nnunet.nifti import write_volume
from mslesseg_nnunet.ensembles.fusion import fuse_case
from mslesseg_nnunet.ensembles.members import ENSEMBLE_KEY, ENSEMBLE_MANIFEST, PREDICTION_PROBABILITIES, \
    Member, member_model, model_key, open_member, tuned_choice
from mslesseg_nnunet.ensembles.validation import model_cv_dice
from mslesseg_nnunet.postprocessing.params import CV_DICE, PostprocessingParams, load_members
from mslesseg_nnunet.postprocessing.rules import check_groups, group_of, segment

SUBMISSION = "submission.zip"
UNWEIGHTED_RULES = ("union", "staple")
PACKAGES = ("mslesseg-nnunet", "nnunetv2", "torch", "numpy", "nibabel", "SimpleITK",
            "connected-components-3d", "scipy")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the numbers."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """One non-negative weight per member (default 1), not all zero."""
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise UserError(f"--weights: got {len(weights)} weights for {n} input folders")
    weights = [check_finite(w, "--weights") for w in weights]
    if any(w < 0 for w in weights) or not any(weights):
        raise UserError("--weights: weights must be non-negative and not all zero")
    return [float(w) for w in weights]


def common_cases(members: Sequence[Member]) -> list[str]:
    """Cases present in every member; a case missing from one member is an error."""
    if not members:
        raise UserError("-i: no input folders given")
    reference = members[0].cases()
    if not reference:
        raise UserError(f"{members[0].folder}: no .npz probability files")
    for member in members[1:]:
        missing = sorted(set(reference) ^ set(member.cases()))
        if missing:
            raise UserError(f"{member.folder}: case set differs from {members[0].folder} "
                            f"(e.g. {missing[0]!r})")
    return reference


def check_shapes(members: Sequence[Member], cases: Sequence[str]) -> None:
    """Raise UserError when members disagree on the shape of a case (headers only)."""
    for case in cases:
        shape = members[0].shape(case)
        for member in members[1:]:
            if member.shape(case) != shape:
                raise UserError(f"{member.npz_path(case)}: probability shape {member.shape(case)} "
                                f"differs from {shape} in {members[0].npz_path(case)}")


def ensemble_kind(kinds: Iterable[str]) -> str:
    """The shared labelling kind of the members, or "mixed"."""
    kinds = set(kinds)
    return kinds.pop() if len(kinds) == 1 else "mixed"


def check_members(members: Sequence[Member], weights: Sequence[float], rule: str) -> None:
    """Raise UserError when the members cannot feed ``rule``."""
    groups = [group_of(m.kind, rule) for m, w in zip(members, weights) if w]
    check_groups(groups, rule)
    check_rule_weights(weights, rule)


def check_rule_weights(weights: Sequence[float], rule: str) -> None:
    """The union and STAPLE rules take no weights (a weight of 0 still leaves a member out)."""
    if rule in UNWEIGHTED_RULES and len({w for w in weights if w}) > 1:
        raise UserError(f"--weights: the {rule} rule does not weight its members")


def write_probability(path: Path, probability: np.ndarray) -> None:
    """``path`` (.npz, key ``probability``): float32 lesion probability, written atomically."""
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **{ENSEMBLE_KEY: probability.astype(np.float32)})


def write_case(out_dir: Path, case: str, probability: np.ndarray, mask: np.ndarray,
               header, mask_name: str | None = None) -> None:
    """Write the probability and the uint8 mask (``header``'s geometry) of ``case``:
    ``{case}.npz`` and ``{case}.nii.gz``, or with ``mask_name`` (a prediction's
    layout) ``probabilities/{case}.npz`` and the mask at ``mask_name``."""
    if tuple(header.get_data_shape()[:3]) != probability.shape:
        raise UserError(f"case {case}: probability shape {probability.shape} does not match its "
                        f"image shape {tuple(header.get_data_shape()[:3])}")
    npz = f"{case}.npz" if mask_name is None else f"{PREDICTION_PROBABILITIES}/{case}.npz"
    write_probability(out_dir / npz, probability)
    write_volume(out_dir / (mask_name or f"{case}.nii.gz"), mask.astype(np.uint8), header,
                 dtype=np.uint8)


def manifest(kind: str, members: list[dict], params: PostprocessingParams,
             inputs: dict[str, list[str]]) -> dict:
    """The ``ensemble.json`` content (``members``: descriptions with their weights)."""
    return {
        "kind": kind,
        "rule": params.rule,
        "params": params.to_dict(),
        "members": members,
        "versions": package_versions(),
        "inputs_sha256": inputs,
    }


def write_manifest(path: Path, content: dict) -> None:
    write_json(path, content)


def write_submission(out_dir: Path, outputs: dict[str, str]) -> Path:
    """``OUT/submission.zip`` with exactly the masks ``outputs`` names (stored, not
    recompressed; fixed timestamps and modes, so the same masks give the same bytes)."""
    target = out_dir / SUBMISSION
    with atomic_file(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for case in sorted(outputs):
            info = zipfile.ZipInfo(outputs[case], date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, (out_dir / outputs[case]).read_bytes())
    return target


def shared_outputs(members: Sequence[Member]) -> dict[str, str]:
    """The source-naming masks when every member is a prediction of the same cases, else {}."""
    first = members[0].outputs
    return first if first and all(m.outputs == first for m in members) else {}


def ensemble_members(members: Sequence[Member], out_dir: Path, params: PostprocessingParams,
                     weights: Sequence[float] | None = None, overwrite: bool = False,
                     threads: int = 2) -> dict:
    """Fuse ``members`` case by case into the ensemble folder ``out_dir`` (built atomically;
    in the predictions' layout when all members are predictions of the same cases).

    Returns the manifest.
    """
    weights = check_weights(weights, len(members))
    check_members(members, weights, params.rule)
    cases = common_cases(members)
    check_shapes(members, cases)
    outputs = {case: name for case, name in shared_outputs(members).items() if case in cases}
    inputs: dict[str, list[str]] = {}
    with atomic_dir(Path(out_dir), overwrite) as tmp, ThreadPoolExecutor(threads) as pool:
        for case in tqdm(cases, desc="ensemble", unit="case"):
            fusion = fuse_case(members, weights, case, params.rule, pool)
            header = members[0].reference_header(case)
            spacing = header.get_zooms()[:3]
            write_case(tmp, case, *segment(fusion.groups, params, spacing), header, outputs.get(case))
            inputs[case] = fusion.digests
        content = manifest(ensemble_kind(m.kind for m in members),
                           [{**m.describe(), "weight": w} for m, w in zip(members, weights)],
                           params, inputs)
        if outputs:
            content["cases"] = outputs
            write_submission(tmp, outputs)
        write_manifest(tmp / ENSEMBLE_MANIFEST, content)
    return content


def ensemble_folders(folders: Sequence[Path], out_dir: Path, params: PostprocessingParams,
                     weights: Sequence[float] | str | None = None, overwrite: bool = False,
                     threads: int = 2, params_path: Path | None = None) -> dict:
    """``mslesseg ensemble``: open prediction/ensemble folders and fuse them into ``out_dir``.

    ``weights``: one per folder, or "cv-dice" (each member's model's CV Dice). With
    ``params_path`` naming chosen members (``mslesseg tune --select-members`` or
    ``--weights cv-dice``), only those folders are fused, with the weights tuned.
    """
    check_no_overlap(out_dir, folders + ([params_path] if params_path else []))
    members = [open_member(Path(f)) for f in folders]
    tuned = load_members(params_path) if params_path else None
    if tuned is not None:
        if weights is not None:
            raise UserError(f"--weights: {params_path} already fixes the members and their weights")
        keys = [model_key(m) if (m := member_model(x)) else None for x in members]
        chosen, weights = tuned_choice(keys, [str(f) for f in folders], tuned, params_path)
        members = [members[i] for i in chosen]
    elif weights == CV_DICE:
        weights = [member_cv_dice(m) for m in members]
    return ensemble_members(members, out_dir, params, weights, overwrite, threads)


def member_cv_dice(member: Member) -> float:
    """The CV Dice of the model behind ``member`` (its ``fold_K/validation`` outputs)."""
    model = member_model(member)
    if model is None or "model" not in model:
        raise UserError(f"{member.folder}: --weights cv-dice needs a CV validation folder or a "
                        "single-model `mslesseg predict` output")
    return model_cv_dice(Path(model["model"]))
