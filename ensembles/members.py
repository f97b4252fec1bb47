"""Ensemble members: folders of per-case probabilities, collapsed to lesion probability.

A member is an nnU-Net output folder (``{case}.npz`` with key
``probabilities``, channels first in nnU-Net's reader axis order, plus
``{case}.pkl`` and usually the segmentation ``{case}.nii.gz``), one of our
ensemble folders (``{case}.npz`` with key ``probability``, already lesion
probability in nibabel axis order, plus ``ensemble.json``), or a
``mslesseg predict --save-probabilities`` output (``probabilities/{case}.npz``
like an ensemble folder's, masks in the source's naming listed under
``cases`` in its ``ensemble.json``). Every array a
member returns is float32 lesion probability in nibabel axis order, i.e. the
order ``mslesseg_nnunet.nifti.read_volume`` gives for the case's image.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from mslesseg_nnunet.dataset_json import lesion_labels, load_dataset_json
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nifti import make_header, read_header
from mslesseg_nnunet.ensembles.npz import array_shape, read_bytes, sum_channels

ENSEMBLE_MANIFEST = "ensemble.json"
ENSEMBLE_KEY = "probability"
NNUNET_KEY = "probabilities"
PREDICTION_PROBABILITIES = "probabilities"


@dataclass
class Member:
    """One folder of per-case probabilities.

    Attributes
    ----------
    folder : the folder holding ``{case}.npz``.
    kind : labelling kind ("binary", "msl", "dbl", or "mixed" for mixed ensembles).
    lesion_labels : label values summed into lesion probability (nnU-Net members).
    fmt : "nnunet" or "ensemble".
    info : what is known about the model (dataset, trainer, plans, configuration, folds).
    file_ending : ending of the segmentation files next to the npz files.
    outputs : for a ``mslesseg predict`` output, each case's mask path relative to it.
    """

    folder: Path
    kind: str
    lesion_labels: tuple[int, ...]
    fmt: str
    info: dict = field(default_factory=dict)
    file_ending: str = ".nii.gz"
    outputs: dict[str, str] = field(default_factory=dict)

    def cases(self) -> list[str]:
        """Case ids with a probability file, sorted."""
        return sorted(p.name[:-4] for p in self.folder.glob("*.npz"))

    def npz_path(self, case: str) -> Path:
        return self.folder / f"{case}.npz"

    def read(self, case: str) -> tuple[np.ndarray, str]:
        """Lesion probability of ``case`` (float32, nibabel axis order) and the npz's sha256."""
        path = self.npz_path(case)
        data, digest = read_bytes(path)
        if self.fmt == "ensemble":
            return sum_channels(data, ENSEMBLE_KEY, None, path), digest
        lesion = sum_channels(data, NNUNET_KEY, self.lesion_labels, path)
        return to_nibabel_order(lesion, self.properties(case)), digest

    def shape(self, case: str) -> tuple[int, ...]:
        """Spatial shape of ``case`` in nibabel axis order, from the npz header only."""
        if self.fmt == "ensemble":
            return array_shape(self.npz_path(case), ENSEMBLE_KEY)
        spatial = array_shape(self.npz_path(case), NNUNET_KEY)[1:]
        return _oriented(np.broadcast_to(np.uint8(0), spatial), self.properties(case)).shape

    def properties(self, case: str) -> dict:
        """nnU-Net's ``{case}.pkl`` properties."""
        path = self.folder / f"{case}.pkl"
        try:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        except FileNotFoundError:
            raise UserError(f"{path}: file not found (nnU-Net writes it next to {case}.npz)") from None
        except Exception as exc:
            raise UserError(f"{path}: unreadable properties file ({exc})") from None

    def reference_header(self, case: str) -> nib.Nifti1Header:
        """Geometry of ``case``: its mask (a prediction's, or the segmentation next to the npz),
        else built from the pkl."""
        if case in self.outputs:
            return read_header(self.folder.parent / self.outputs[case])
        seg = self.folder / f"{case}{self.file_ending}"
        if seg.is_file() and self.file_ending in (".nii.gz", ".nii"):
            return read_header(seg)
        if self.fmt == "ensemble":
            raise UserError(f"{seg}: file not found (ensemble folders keep a mask per case)")
        return header_from_properties(self.properties(case))

    def describe(self) -> dict:
        """JSON-ready description for manifests."""
        return {"folder": str(self.folder), "kind": self.kind, "format": self.fmt,
                "lesion_labels": list(self.lesion_labels), **self.info}


def to_nibabel_order(array: np.ndarray, properties: dict) -> np.ndarray:
    """Bring a 3D array from nnU-Net's reader axis order to the file's own (nibabel) order.

    Both SimpleITK and nibabel readers in nnU-Net reverse the axes; the
    reorienting nibabel reader also reorients to RAS, which is undone here.
    """
    return np.ascontiguousarray(_oriented(array, properties))


def _oriented(array: np.ndarray, properties: dict) -> np.ndarray:
    """A view of ``array`` (nnU-Net reader order) in nibabel order."""
    array = array.transpose(2, 1, 0)
    nib_stuff = properties.get("nibabel_stuff", {})
    if "reoriented_affine" in nib_stuff:
        back = ornt_transform(axcodes2ornt("RAS"), io_orientation(nib_stuff["original_affine"]))
        array = apply_orientation(array, back)
    return array


def header_from_properties(properties: dict) -> nib.Nifti1Header:
    """A NIfTI header (codes 1/1) rebuilt from nnU-Net's properties of a case."""
    if "nibabel_stuff" in properties:
        return make_header(np.asarray(properties["nibabel_stuff"]["original_affine"]), 1, 1)
    sitk = properties["sitk_stuff"]
    direction = np.asarray(sitk["direction"], dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(sitk["spacing"], dtype=np.float64)
    affine[:3, 3] = sitk["origin"]
    return make_header(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine, 1, 1)


def labelling_kind(dataset_json: dict, source: Path) -> str:
    """"binary", "msl" or "dbl" from our ``labelling`` key, else "binary" / "multiclass"
    from the lesion labels; several foreground labels without ``lesion_labels`` are an error."""
    labelling = dataset_json.get("labelling")
    kind = labelling.get("kind") if isinstance(labelling, dict) else labelling
    if kind in ("binary", "msl", "dbl"):
        return kind
    labels = lesion_labels(dataset_json)
    if not labels:
        raise UserError(f"{source}: no foreground label; nothing to collapse to lesion probability")
    if "lesion_labels" not in dataset_json and len(labels) > 1:
        raise UserError(f"{source}: {len(labels)} foreground labels and no 'lesion_labels'; cannot "
                        "tell which labels are lesion (incompatible label set)")
    return "binary" if labels == [1] else "multiclass"


def model_info(model_dir: Path) -> dict:
    """Dataset, trainer, plans and configuration from ``.../DatasetX/TRAINER__PLANS__CONFIG``."""
    parts = model_dir.name.split("__")
    if len(parts) != 3:
        return {"model": str(model_dir)}
    return {"dataset": model_dir.parent.name, "trainer": parts[0], "plans": parts[1],
            "configuration": parts[2]}


def model_key(info: dict) -> str | None:
    """``DatasetX/TRAINER__PLANS__CONFIG``: a trained model's identity in manifests and tuned
    files (its folder when it is not named that way, None when unknown)."""
    if all(k in info for k in ("dataset", "trainer", "plans", "configuration")):
        return f"{info['dataset']}/{info['trainer']}__{info['plans']}__{info['configuration']}"
    return info.get("model")


def source_models(member: Member) -> list[dict]:
    """The trained models behind a member, each with its folder under ``model``: one for a CV
    validation folder, a prediction's members for a ``mslesseg predict`` output, else none."""
    if "prediction" in member.info:
        manifest = load_dataset_json(Path(member.info["prediction"]) / ENSEMBLE_MANIFEST)
        return manifest.get("members", [])
    if member.folder.parent.name.startswith("fold_") and "trainer" in member.info:
        return [{**member.info, "model": str(member.folder.parent.parent)}]
    return []


def member_model(member: Member) -> dict | None:
    """The one trained model behind ``member`` (see ``source_models``), else None."""
    sources = source_models(member)
    return sources[0] if len(sources) == 1 else None


def tuned_choice(keys: Sequence[str | None], names: Sequence[str], tuned: list[dict],
                 source: Path) -> tuple[list[int], list[float]]:
    """Which inputs (by model key) are the members ``tuned`` names, and their weights.

    Every tuned member must be among the inputs; inputs whose model is unknown are an error.
    """
    weights = {m["model"]: float(m.get("weight", 1.0)) for m in tuned}
    for key, name in zip(keys, names):
        if key is None:
            raise UserError(f"{name}: cannot tell which trained model it comes from, so cannot "
                            f"match it to the members chosen in {source}")
    missing = sorted(set(weights) - set(keys))
    if missing:
        raise UserError(f"{source}: chosen member {missing[0]} is not among the given inputs")
    chosen = [i for i, key in enumerate(keys) if key in weights]
    return chosen, [weights[keys[i]] for i in chosen]


def open_member(folder: Path, info: dict | None = None) -> Member:
    """Open a prediction, validation or ensemble folder as an ensemble member."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found")
    if (folder / ENSEMBLE_MANIFEST).is_file():
        manifest = load_dataset_json(folder / ENSEMBLE_MANIFEST)
        if "cases" in manifest:
            return _open_prediction(folder, manifest)
        return Member(folder=folder, kind=manifest.get("kind", "mixed"), lesion_labels=(),
                      fmt="ensemble", info={"ensemble": manifest.get("rule", {})})
    return _open_nnunet(folder, info)


def _open_prediction(folder: Path, manifest: dict) -> Member:
    """A ``mslesseg predict`` output folder (its fused probabilities are the member)."""
    probabilities = folder / PREDICTION_PROBABILITIES
    if not probabilities.is_dir():
        raise UserError(f"{folder}: prediction without {PREDICTION_PROBABILITIES}/ (rerun "
                        "mslesseg predict with --save-probabilities)")
    return Member(folder=probabilities, kind=manifest.get("kind", "mixed"), lesion_labels=(),
                  fmt="ensemble", info={"prediction": str(folder), "ensemble": manifest.get("rule", {})},
                  outputs=manifest["cases"])


def _open_nnunet(folder: Path, info: dict | None) -> Member:
    candidates = [folder / "dataset.json", folder.parent.parent / "dataset.json"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise UserError(f"{folder}: no dataset.json here (nnU-Net copies it into prediction and "
                        "model folders) and no ensemble.json; not a probability folder")
    dataset_json = load_dataset_json(found)
    if info is None:
        info = model_info(found.parent) if found.parent != folder else _prediction_info(folder)
        if folder.parent.name.startswith("fold_"):
            info["folds"] = [folder.parent.name[len("fold_"):]]
    return Member(folder=folder, kind=labelling_kind(dataset_json, found),
                  lesion_labels=tuple(lesion_labels(dataset_json)), fmt="nnunet", info=info,
                  file_ending=dataset_json.get("file_ending", ".nii.gz"))


def _prediction_info(folder: Path) -> dict:
    plans = folder / "plans.json"
    if not plans.is_file():
        return {}
    data = json.loads(plans.read_text())
    return {"dataset": data.get("dataset_name"), "plans": data.get("plans_name")}
