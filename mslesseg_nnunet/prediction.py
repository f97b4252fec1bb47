"""Competition-style batch prediction: every fold of every model, fused, in the source's naming.

Flow: check the models and the input folder; link the inputs into nnU-Net
naming (``dataset_conversion.prepare_prediction_inputs``; every channel some
model needs, each model then reads its own; a model trained on quantile-normalised data
reads them normalised with the references in its ``dataset.json``); run nnU-Net's
predictor per model over all requested folds with probabilities kept (into
``OUT/.work/``, reused when a run is resumed); fuse and postprocess case by
case; write each mask with the source image's header (``write_back``); then
``OUT/ensemble.json`` and ``OUT/submission.zip`` holding exactly the masks.
Cases whose mask exists are skipped unless ``overwrite``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from mslesseg_nnunet.atomic import check_no_overlap, clean_stale, staging_dir
from mslesseg_nnunet.dataset_conversion import prepare_prediction_inputs, write_back
from mslesseg_nnunet.dataset_json import load_dataset_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import read_header
from mslesseg_nnunet.ensembles.folder import check_rule_weights, check_shapes, check_weights, \
    ensemble_kind, manifest, write_manifest, write_probability, write_submission
from mslesseg_nnunet.ensembles.blending import ORACLE_BLENDINGS, check_oracle, choose_blending, \
    oracle_label_files
from mslesseg_nnunet.ensembles.fusion import fuse_case
from mslesseg_nnunet.ensembles.members import ENSEMBLE_MANIFEST, PREDICTION_PROBABILITIES, \
    labelling_kind, model_info, model_key, open_member, tuned_choice
from mslesseg_nnunet.ensembles.validation import model_cv_dice
from mslesseg_nnunet.postprocessing.params import CV_DICE, PostprocessingParams, load_members
from mslesseg_nnunet.postprocessing.rules import check_groups, group_of, segment
from mslesseg_nnunet.quantile_normalisation import normalise_folder, stored_references

CHECKPOINT = "checkpoint_final.pth"
WORK = ".work"
IDENTITY = "identity.json"  # OUT/.work/identity.json: the run as it started


@dataclass
class Model:
    """A trained nnU-Net model folder and the folds to run."""

    folder: Path
    folds: list[str]
    kind: str
    channels: list[str]
    blending: str = "gaussian"
    references: dict = field(default_factory=dict)  # quantile normalisation, channel -> reference

    def describe(self) -> dict:
        return {"model": str(self.folder), **model_info(self.folder), "folds": self.folds,
                "blending": self.blending}

    def tag(self, tta: bool) -> str:
        """Work-folder name, unique for this model, its folds, blending and the TTA setting."""
        key = json.dumps([str(self.folder.resolve()), self.folds, tta, self.blending])
        return f"{self.folder.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def model_folds(model_dir: Path, folds: Sequence[str] | None) -> list[str]:
    """Requested folds (default: every ``fold_K``), each with a final checkpoint."""
    if folds is None:
        folds = sorted((p.name[len("fold_"):] for p in model_dir.glob("fold_*") if p.is_dir()),
                       key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f))
        if not folds:
            raise UserError(f"{model_dir}: no fold_K folders (is this an nnU-Net model folder?)")
    for fold in folds:
        checkpoint = model_dir / f"fold_{fold}" / CHECKPOINT
        if not checkpoint.parent.is_dir():
            raise UserError(f"{checkpoint.parent}: fold folder not found (missing fold)")
        if not checkpoint.is_file():
            raise UserError(f"{checkpoint}: checkpoint not found (fold not trained to the end)")
    return [str(f) for f in folds]


def open_model(model_dir: Path, folds: Sequence[str] | None, blending: str | None = None) -> Model:
    """Check a model folder (dataset.json, plans.json, checkpoints) and describe it;
    ``blending``: the requested one (None: the model's own, see ``blending.choose_blending``)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: model folder not found")
    if not (model_dir / "plans.json").is_file():
        raise UserError(f"{model_dir / 'plans.json'}: file not found (not an nnU-Net model folder)")
    dataset_json = load_dataset_json(model_dir / "dataset.json")
    channels = [dataset_json["channel_names"][k] for k in sorted(dataset_json.get("channel_names", {}), key=int)]
    folds = model_folds(model_dir, folds)
    regions = any(isinstance(v, (list, tuple)) for v in dataset_json.get("labels", {}).values())
    blending = choose_blending(model_dir, model_dir / f"fold_{folds[0]}" / CHECKPOINT, blending, regions)
    return Model(model_dir, folds, labelling_kind(dataset_json, model_dir / "dataset.json"), channels,
                 blending, stored_references(dataset_json))


def check_models(models: Sequence[Model], params: PostprocessingParams) -> None:
    """Members the rule can use."""
    check_groups([group_of(m.kind, params.rule) for m in models], params.rule)


def input_channels(models: Sequence[Model]) -> list[str]:
    """Every channel some model needs, in order of first appearance (an nnU-Net input folder
    is read in this order: the first model's channels, then the new ones of the next)."""
    return list(dict.fromkeys(c for m in models for c in m.channels))


def choose_models(models: list[Model], weights: Sequence[float] | str | None,
                  params_path: Path | None) -> tuple[list[Model], list[float]]:
    """The members to run and their weights: those chosen in ``params_path`` (with its
    weights), else every model with ``weights`` (numbers, "cv-dice", or all 1)."""
    tuned = load_members(params_path) if params_path else None
    if tuned is not None:
        if weights is not None:
            raise UserError(f"--weights: {params_path} already fixes the members and their weights")
        chosen, weights = tuned_choice([model_key(m.describe()) for m in models],
                                       [str(m.folder) for m in models], tuned, params_path)
        return [models[i] for i in chosen], weights
    if weights == CV_DICE:
        return models, [model_cv_dice(m.folder) for m in models]
    return models, check_weights(weights, len(models))


def default_params(models: Sequence[Model], params: PostprocessingParams | None) -> PostprocessingParams:
    """``params``, or the MadSeg defaults for MSL+DBL models, else the mean rule."""
    if params is not None:
        return params
    rule = "madseg" if {m.kind for m in models} == {"msl", "dbl"} else "mean"
    return PostprocessingParams(rule=rule)


def prepare_output(out_dir: Path, identity: dict, overwrite: bool) -> None:
    """Create ``out_dir`` and record the run's ``identity`` in it before anything is predicted;
    refuse a folder that is not an earlier run with the same identity (naming what differs)."""
    if out_dir.exists() and overwrite:
        shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
    if out_dir.is_dir() and any(out_dir.iterdir()):
        recorded = recorded_identity(out_dir)
        if recorded is None:
            raise UserError(f"{out_dir}: exists and is not a `mslesseg predict` output "
                            "(use --overwrite to replace it)")
        if recorded != identity:
            raise UserError(f"{out_dir}: was predicted with other {identity_difference(recorded, identity)} "
                            "(use --overwrite to redo it)")
        clean_stale(out_dir, recursive=True)
    elif out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder (use --overwrite to replace it)")
    write_manifest(out_dir / WORK / IDENTITY, identity)


def run_identity(content: dict) -> dict:
    """What must match for a rerun to resume a predict output: members (models, folds,
    weights, blending), parameters, TTA and the sha256 of every input image."""
    return {"params": content.get("params"),
            "members": [{k: m.get(k) for k in ("model", "folds", "weight", "blending")}
                        for m in content.get("members", [])],
            "tta": content.get("tta"),
            "images_sha256": content.get("images_sha256")}


def recorded_identity(out_dir: Path) -> dict | None:
    """The identity an earlier run recorded when it started (or in its finished manifest)."""
    for path, identity in ((out_dir / WORK / IDENTITY, dict), (out_dir / ENSEMBLE_MANIFEST, run_identity)):
        if path.is_file():
            try:
                return identity(json.loads(path.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise UserError(f"{path}: not valid JSON (use --overwrite to redo the output)") from None
    return None


def identity_difference(old: dict, new: dict) -> str:
    """What differs between two run identities, in words (``params.threshold 0.5 -> 0.6``)."""
    parts = []
    for key in new:
        if old.get(key) == new[key]:
            continue
        if isinstance(new[key], dict) and isinstance(old.get(key), dict):
            names = sorted(k for k in set(old[key]) | set(new[key]) if old[key].get(k) != new[key].get(k))
            parts.append(f"{key} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
        else:
            parts.append(f"{key} ({json.dumps(old.get(key))} -> {json.dumps(new[key])})"
                         if key == "tta" else key)
    return "; ".join(parts)


def case_inputs(inputs_dir: Path, case: str, channels: Sequence[int]) -> list[str]:
    return [str(inputs_dir / f"{case}_{c:04d}.nii.gz") for c in channels]


def make_predictor(model: Model, device: str | None, tta: bool):
    """nnU-Net's predictor loaded with every requested fold of ``model`` (device None: cuda
    when available, else cpu)."""
    import torch

    from mslesseg_nnunet.ensembles.blending_predictor import BlendingPredictor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    predictor = BlendingPredictor(model.blending, use_mirroring=tta,
                                  perform_everything_on_device=device == "cuda",
                                  device=torch.device(device), verbose=False, allow_tqdm=False)
    folds = [f if f == "all" else int(f) for f in model.folds]
    try:
        predictor.initialize_from_trained_model_folder(str(model.folder), folds, CHECKPOINT)
    except Exception as exc:  # torch.load raises many types for a truncated or foreign file
        files = ", ".join(f"fold_{f}/{CHECKPOINT}" for f in model.folds)
        reason = " ".join(str(exc).split(". ")[0].split()) or type(exc).__name__
        raise UserError(f"{model.folder}: cannot load {files} (corrupt or truncated? {reason})") \
            from None
    return predictor


def model_inputs(model: Model, cases: Sequence[str], inputs_dir: Path, channels: Sequence[str],
                 scratch: Path) -> Path:
    """The folder ``model`` reads its channels from (named as in ``inputs_dir``): ``inputs_dir``,
    or, for a model trained on quantile-normalised data, ``scratch`` holding its own channels
    normalised with the references stored in its ``dataset.json``."""
    if not model.references:
        return inputs_dir
    normalise_folder(inputs_dir, scratch, cases, [channels.index(c) for c in model.channels],
                     model.references)
    return scratch


def run_model(model: Model, cases: Sequence[str], inputs_dir: Path, member_dir: Path,
              device: str | None, tta: bool, workers: int, channels: Sequence[str],
              labels: Sequence[str] | None = None) -> None:
    """Probabilities of ``cases`` by ``model`` into ``member_dir`` (cases already there are kept);
    ``channels``: the names of the prepared input channels, of which the model takes its own;
    ``labels``: each case's ground truth, for the oracle blendings."""
    member_dir.mkdir(parents=True, exist_ok=True)
    predictor = make_predictor(model, device, tta)
    own = [channels.index(c) for c in model.channels]
    lists = [case_inputs(inputs_dir, c, own) for c in cases]
    outputs = [str(member_dir / c) for c in cases]
    if model.blending in ORACLE_BLENDINGS:
        predictor.predict_files_with_labels(lists, labels, outputs)
    elif workers == 0:
        predictor.predict_from_files_sequential(lists, outputs, save_probabilities=True,
                                                overwrite=False)
    else:
        predictor.predict_from_files(lists, outputs, save_probabilities=True, overwrite=False,
                                     num_processes_preprocessing=workers,
                                     num_processes_segmentation_export=workers)


def fuse_and_write(members, case: str, entry: dict, out_dir: Path, params: PostprocessingParams,
                   save_probabilities: bool, pool, weights: Sequence[float], digests: Path) -> None:
    """Fuse one case, write its members' digests to ``digests``, then its mask in the source's
    naming (and probability)."""
    fusion = fuse_case(members, weights, case, params.rule, pool)
    spacing = read_header(Path(entry["reference_image"])).get_zooms()[:3]
    probability, mask = segment(fusion.groups, params, spacing)
    if save_probabilities:
        write_probability(out_dir / PREDICTION_PROBABILITIES / f"{case}.npz", probability)
    write_manifest(digests, fusion.digests)
    write_back(mask.astype(np.uint8), entry, out_dir)


def predict_folder(src: Path, out_dir: Path, model_dirs: Sequence[Path],
                   folds: Sequence[str] | None = None, params: PostprocessingParams | None = None,
                   device: str | None = None, save_probabilities: bool = False, tta: bool = True,
                   overwrite: bool = False, workers: int = 2,
                   weights: Sequence[float] | str | None = None,
                   params_path: Path | None = None, blending: str | None = None,
                   oracle_gt: Path | None = None) -> dict:
    """``mslesseg predict``; returns the manifest written to ``OUT/ensemble.json``.

    ``weights``/``params_path``: see ``choose_models``; ``blending``: every model's
    sliding-window blending (None: each its own); ``oracle_gt``: ground truth for the oracles."""
    out_dir = Path(out_dir)
    check_no_overlap(out_dir, [src, *model_dirs, params_path, oracle_gt])
    models, weights = choose_models([open_model(Path(d), folds, blending) for d in model_dirs],
                                    weights, params_path)
    check_oracle([m.blending for m in models], oracle_gt)
    params = default_params(models, params)
    check_models(models, params)
    check_rule_weights(weights, params.rule)
    descriptions = [{**m.describe(), "kind": m.kind, "weight": w} for m, w in zip(models, weights)]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    created = not out_dir.exists()
    try:
        with staging_dir(out_dir.parent, f"{out_dir.name}-inputs") as scratch:
            inputs_dir = scratch / "inputs"
            channels = input_channels(models)
            case_map = prepare_prediction_inputs(Path(src), inputs_dir, channels)
            labels = oracle_label_files(oracle_gt, sorted(case_map)) if oracle_gt is not None else {}
            images = {c: case_map[c]["sha256"] for c in sorted(case_map)}
            identity = run_identity({"params": params.to_dict(), "members": descriptions,
                                     "tta": tta, "images_sha256": images})
            prepare_output(out_dir, identity, overwrite)
            todo = [c for c in sorted(case_map) if not (out_dir / case_map[c]["output"]).is_file()]
            print(f"{len(todo)} of {len(case_map)} cases to predict")
            member_dirs = [out_dir / WORK / m.tag(tta) for m in models]
            if todo:
                for k, (model, member_dir) in enumerate(zip(models, member_dirs)):
                    model_dir = model_inputs(model, todo, inputs_dir, channels,
                                             scratch / f"normalised-{k}")
                    run_model(model, todo, model_dir, member_dir, device, tta, workers, channels,
                              [labels.get(c) for c in todo])
        return finish(out_dir, models, member_dirs, descriptions, case_map, todo, params,
                      save_probabilities, identity)
    except BaseException:
        if created and not any(out_dir.rglob("*.nii*")):  # nothing finished: leave nothing
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def finish(out_dir: Path, models, member_dirs, descriptions, case_map: dict, todo: list[str],
           params: PostprocessingParams, save_probabilities: bool, identity: dict) -> dict:
    """Fuse the new cases (each case's member digests kept in ``.work/digests`` until the
    manifest holds them), then write the manifest and the submission; drop the work folder."""
    previous = out_dir / ENSEMBLE_MANIFEST
    inputs = json.loads(previous.read_text()).get("inputs_sha256", {}) if previous.is_file() else {}
    digests = out_dir / WORK / "digests"
    if todo:
        members = [open_member(d, info=m.describe()) for m, d in zip(models, member_dirs)]
        check_shapes(members, todo)
        with ThreadPoolExecutor(2) as pool:
            for case in tqdm(todo, desc="fuse", unit="case"):
                fuse_and_write(members, case, case_map[case], out_dir, params, save_probabilities,
                               pool, [d["weight"] for d in descriptions], digests / f"{case}.json")
    inputs.update({p.stem: json.loads(p.read_text()) for p in digests.glob("*.json")})
    outputs = {c: case_map[c]["output"] for c in sorted(case_map)}
    content = {**manifest(ensemble_kind(m.kind for m in models), descriptions, params,
                          {c: inputs[c] for c in sorted(case_map) if c in inputs}),
               "tta": identity["tta"], "images_sha256": identity["images_sha256"],
               "cases": outputs}
    write_manifest(out_dir / ENSEMBLE_MANIFEST, content)
    write_submission(out_dir, outputs)
    shutil.rmtree(out_dir / WORK, ignore_errors=True)
    return content
