"""Hand-made nnU-Net probability folders for ensemble, tune and predict tests."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np

LABELLINGS = {"binary": [1], "msl": [1, 2, 3], "dbl": [1, 2]}
AFFINE = np.array([[-1.0, 0, 0, 90], [0, 1.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])


def dataset_json(kind: str, with_lesion_labels: bool = True) -> dict:
    labels = LABELLINGS[kind]
    data = {"channel_names": {"0": "FLAIR"},
            "labels": {"background": 0, **{f"l{v}": v for v in labels}},
            "numTraining": 3, "file_ending": ".nii.gz"}
    if with_lesion_labels:
        data["lesion_labels"] = labels
        data["labelling"] = {"kind": kind}
    return data


def minimal_plans() -> dict:
    """Just enough of a plans.json for nnUNetv2_ensemble (reader/writer and labels)."""
    return {"dataset_name": "Dataset900_Test", "plans_name": "nnUNetPlans",
            "image_reader_writer": "SimpleITKIO", "label_manager": "LabelManager",
            "configurations": {}, "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "original_median_spacing_after_transp": [1, 1, 1],
            "original_median_shape_after_transp": [1, 1, 1],
            "foreground_intensity_properties_per_channel": {}, "experiment_planner_used": "x"}


def sitk_properties(shape_xyz: tuple, affine: np.ndarray = AFFINE) -> dict:
    """nnU-Net properties for an image read with SimpleITK (LPS direction, spacing x,y,z)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    return {"sitk_stuff": {"spacing": tuple(spacing), "origin": tuple(lps[:3, 3]),
                           "direction": tuple((lps[:3, :3] / spacing).ravel())},
            "spacing": list(spacing[::-1]), "shape_before_cropping": shape_xyz[::-1],
            "shape_after_cropping_and_before_resampling": shape_xyz[::-1],
            "bbox_used_for_cropping": [[0, s] for s in shape_xyz[::-1]]}


def softmax_probabilities(rng: np.random.Generator, n_classes: int, shape_xyz: tuple) -> np.ndarray:
    """Random softmax probabilities (classes, z, y, x), float32, as nnU-Net stores them."""
    logits = rng.normal(0, 2, (n_classes, *shape_xyz[::-1])).astype(np.float32)
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def write_member(folder: Path, probabilities: dict[str, np.ndarray], kind: str = "binary",
                 with_lesion_labels: bool = True, affine: np.ndarray = AFFINE) -> Path:
    """An nnU-Net output folder: {case}.npz/.pkl/.nii.gz, dataset.json, plans.json.

    ``probabilities[case]`` is (classes, z, y, x), i.e. nnU-Net's SimpleITK order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(dataset_json(kind, with_lesion_labels)))
    (folder / "plans.json").write_text(json.dumps(minimal_plans()))
    for case, probs in probabilities.items():
        np.savez_compressed(folder / f"{case}.npz", probabilities=probs)
        shape_xyz = probs.shape[1:][::-1]
        with open(folder / f"{case}.pkl", "wb") as handle:
            pickle.dump(sitk_properties(shape_xyz, affine), handle)
        seg = probs.argmax(0).transpose(2, 1, 0).astype(np.uint8)
        img = nib.Nifti1Image(seg, affine)
        img.header.set_qform(affine, 1)
        img.header.set_sform(affine, 1)
        nib.save(img, folder / f"{case}.nii.gz")
    return folder


def lesion_xyz(probs: np.ndarray, kind: str) -> np.ndarray:
    """Lesion probability of (classes, z, y, x) probabilities, in nibabel (x, y, z) order."""
    return probs[LABELLINGS[kind]].sum(0).transpose(2, 1, 0)


def write_validation_model(results: Path, dataset: str, kind: str,
                           folds: dict[int, dict[str, np.ndarray]],
                           name: str = "nnUNetTrainer__nnUNetPlans__3d_fullres") -> Path:
    """A trained-model folder with ``fold_K/validation/{case}.npz`` CV outputs."""
    model = results / dataset / name
    for fold, probabilities in folds.items():
        folder = write_member(model / f"fold_{fold}" / "validation", probabilities, kind)
        (folder / "dataset.json").replace(model / "dataset.json")
        (folder / "plans.json").replace(model / "plans.json")
    return model


def class_probabilities(lesion_zyx: np.ndarray, kind: str) -> np.ndarray:
    """(classes, z, y, x) float32 probabilities whose lesion sum is ``lesion_zyx``."""
    lesion = lesion_zyx.astype(np.float32)
    n = len(LABELLINGS[kind])
    channels = [1 - lesion, lesion] + [np.zeros_like(lesion)] * (n - 1)
    return np.stack(channels).astype(np.float32)


def write_labels(folder: Path, labels_xyz: dict[str, np.ndarray], affine: np.ndarray = AFFINE) -> None:
    """Ground-truth label files ``{case}.nii.gz`` (uint8, nibabel order)."""
    folder.mkdir(parents=True, exist_ok=True)
    for case, labels in labels_xyz.items():
        nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), folder / f"{case}.nii.gz")
