"""Quantile normalisation (seed 002): checked against a textbook example and an independent
numpy re-implementation; the stored reference reaches `mslesseg predict`, the inputs of
stock `nnUNetv2_predict`, the experiment file, and nnU-Net's preprocessed dataset."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mslesseg_nnunet.cli import main
from mslesseg_nnunet.dataset_conversion.normalise import normalise_dataset
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.quantile_normalisation import brain_mask, map_onto, quantile_function

SHAPE = (24, 28, 22)
K = 1001  # quantiles of a stored reference


def independent_reference(scans: list[np.ndarray], k: int = K) -> np.ndarray:
    """Bolstad's reference: the mean over scans of their quantile functions."""
    return np.mean([np.percentile(s.astype(float), np.linspace(0, 100, k)) for s in scans], axis=0)


def independent_normalise(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rank i of n -> reference at probability i/(n-1); tied values: the mean over their ranks."""
    n = values.size
    ordered = np.sort(values)
    out = np.empty(n)
    for value in np.unique(values):
        ranks = np.arange(np.searchsorted(ordered, value), np.searchsorted(ordered, value, "right"))
        out[values == value] = np.interp(ranks / (n - 1), np.linspace(0, 1, len(reference)),
                                         reference).mean()
    return out


def brain(channels: list[np.ndarray]) -> np.ndarray:
    return ndimage.binary_fill_holes(np.any([c != 0 for c in channels], axis=0))


def integer_case(rng: np.random.Generator, scale: float) -> list[np.ndarray]:
    """FLAIR- and T1-like integer channels: an ellipsoid brain (zero outside) with a zero-valued
    hole inside (part of the brain once holes are filled) and a bright blob."""
    grid = np.indices(SHAPE).astype(float)
    centre = (np.array(SHAPE) - 1)[:, None, None, None] / 2
    head = (((grid - centre) / (np.array(SHAPE)[:, None, None, None] * 0.45)) ** 2).sum(0) <= 1
    blob = ((grid - rng.uniform(8, 14, 3)[:, None, None, None]) ** 2).sum(0) <= 9
    flair = np.round(scale * (60 + 30 * blob + rng.normal(0, 6, SHAPE))) * head
    t1 = np.round(80 - 20 * blob + rng.normal(0, 4, SHAPE)) * head
    flair[11:13, 13:15, 10:12] = t1[11:13, 13:15, 10:12] = 0
    return [np.clip(flair, 1, None) * (flair != 0), t1]


def write_case(folder: Path, case: str, channels: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(channels):
        nib.save(nib.Nifti1Image(c.astype(np.int16), np.diag([1.0, 1.0, 1.2, 1.0])),
                 folder / f"{case}_{i:04d}.nii.gz")


def read(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


@pytest.fixture(scope="module")
def scans():
    """4 training cases and 1 test case whose FLAIR scales differ (as across scanners)."""
    rng = np.random.default_rng(2)
    return {f"case_{i}": integer_case(rng, s) for i, s in enumerate((1.0, 1.5, 0.7, 2.0, 3.0))}


@pytest.fixture
def raw(tmp_path, scans):
    """An nnU-Net raw dataset of ``scans``; case_4 in imagesTs."""
    folder = tmp_path / "nnUNet_raw" / "Dataset950_Quantile"
    for case, channels in scans.items():
        write_case(folder / ("imagesTs" if case == "case_4" else "imagesTr"), case, channels)
        if case != "case_4":
            (folder / "labelsTr").mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image((channels[0] > 150).astype(np.uint8), np.eye(4)),
                     folder / "labelsTr" / f"{case}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "FLAIR", "1": "T1"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": 4, "file_ending": ".nii.gz", "lesion_labels": [1],
        "labelling": {"kind": "binary"}}))
    return folder


def expected_flair(channels: list[np.ndarray], reference: np.ndarray) -> np.ndarray:
    mask = brain(channels)
    out = np.zeros(SHAPE)
    out[mask] = independent_normalise(channels[0][mask].astype(float), reference)
    return out


def test_textbook_example():
    """The classic three-sample example (ties share the mean of their ranks' values)."""
    samples = [np.array([5.0, 2, 3, 4]), np.array([4.0, 1, 4, 2]), np.array([3.0, 4, 6, 8])]
    reference = np.mean([quantile_function(s, 4) for s in samples], axis=0)
    np.testing.assert_allclose(reference, [2, 3, 14 / 3, 17 / 3])
    expected = [[17 / 3, 2, 3, 14 / 3], [31 / 6, 2, 31 / 6, 3], [2, 3, 14 / 3, 17 / 3]]
    for sample, want in zip(samples, expected):
        np.testing.assert_allclose(map_onto(sample, reference), want)  # integer intensities
        np.testing.assert_allclose(map_onto(np.exp(sample / 3), reference), want)  # only ranks count


def test_dataset_matches_independent_numpy(raw, scans):
    """Reference from imagesTr only; FLAIR of every case (imagesTs too) normalised onto it
    inside the filled nonzero mask; T1 untouched; a rerun changes nothing."""
    info = normalise_dataset(raw, ["FLAIR"], workers=1)
    training = [c for case, c in scans.items() if case != "case_4"]
    reference = independent_reference([c[0][brain(c)] for c in training])
    stored = info["quantile_normalisation"]["channels"]
    assert list(stored) == ["0"] and stored["0"]["name"] == "FLAIR"
    np.testing.assert_allclose(stored["0"]["quantiles"], reference, rtol=1e-12)
    assert json.loads((raw / "dataset.json").read_text()) == info
    for case, channels in scans.items():
        folder = raw / ("imagesTs" if case == "case_4" else "imagesTr")
        np.testing.assert_allclose(read(folder / f"{case}_0000.nii.gz"),
                                   expected_flair(channels, reference), rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(read(folder / f"{case}_0001.nii.gz"), channels[1])
    before = read(raw / "imagesTs" / "case_4_0000.nii.gz")
    assert normalise_dataset(raw, ["FLAIR"], workers=1) == info
    np.testing.assert_allclose(read(raw / "imagesTs" / "case_4_0000.nii.gz"), before, atol=1e-4)


def test_template_reference_and_errors(raw, scans):
    with pytest.raises(UserError, match="PD is not a channel"):
        normalise_dataset(raw, ["PD"], workers=1)
    with pytest.raises(UserError, match="'case_4' is not a training case"):
        normalise_dataset(raw, ["T1"], template="case_4", workers=1)
    info = normalise_dataset(raw, ["T1"], template="case_2", workers=1)
    t1 = scans["case_2"][1][brain(scans["case_2"])]
    np.testing.assert_allclose(info["quantile_normalisation"]["channels"]["1"]["quantiles"],
                               independent_reference([t1]), rtol=1e-12)
    with pytest.raises(UserError, match="already normalised with the reference 'template case_2'"):
        normalise_dataset(raw, ["FLAIR"], workers=1)


def fake_model(raw: Path, root: Path) -> Path:
    """A model folder as nnU-Net leaves it: the training dataset.json (with the reference),
    plans.json and a fold's checkpoint (never loaded here)."""
    import torch

    model = root / "Dataset950_Quantile" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True)
    shutil.copy(raw / "dataset.json", model / "dataset.json")
    (model / "plans.json").write_text("{}")
    torch.save({"network_weights": {}}, model / "fold_0" / "checkpoint_final.pth")
    return model


def test_predict_and_stock_inputs_apply_the_stored_reference(raw, scans, tmp_path, monkeypatch):
    """`mslesseg predict` hands nnU-Net the FLAIR normalised with the model's stored reference
    (T1 as given); `mslesseg normalise inputs` writes the same files for nnUNetv2_predict."""
    from mslesseg_nnunet import prediction as predict_module

    unnormalised = tmp_path / "to_predict"
    shutil.copytree(raw / "imagesTs", unnormalised)
    reference = np.asarray(normalise_dataset(raw, ["FLAIR"], workers=1)
                           ["quantile_normalisation"]["channels"]["0"]["quantiles"])
    model = fake_model(raw, tmp_path / "results")
    want = expected_flair(scans["case_4"], reference)
    seen = {}

    class Stop(Exception):
        pass

    def fake_run_model(model, cases, inputs_dir, *args, **kwargs):
        seen.update({p.name: read(p) for p in inputs_dir.iterdir()})
        raise Stop

    monkeypatch.setattr(predict_module, "run_model", fake_run_model)
    with pytest.raises(Stop):
        predict_module.predict_folder(unnormalised, tmp_path / "out", [model], workers=0)
    from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask

    np.testing.assert_array_equal(brain_mask(scans["case_4"]),
                                  create_nonzero_mask(np.stack(scans["case_4"])))
    np.testing.assert_allclose(seen["case_4_0000.nii.gz"], want, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(seen["case_4_0001.nii.gz"], scans["case_4"][1])

    out = tmp_path / "stock_inputs"
    assert main(["normalise", "inputs", "--model", str(model), "-i", str(unnormalised),
                 "-o", str(out)]) == 0
    np.testing.assert_array_equal(read(out / "case_4_0000.nii.gz"), seen["case_4_0000.nii.gz"])
    np.testing.assert_array_equal(read(out / "case_4_0001.nii.gz"), scans["case_4"][1])
    assert main(["normalise", "inputs", "--model", str(model), "-i", str(unnormalised),
                 "-o", str(out)]) == 2


def test_experiment_key_reaches_convert(tmp_path):
    from mslesseg_nnunet.experiment import RECIPES, build_graph, load_experiment

    path = tmp_path / "demo.toml"
    name = 'name = "DemoMSLesSeg"\n'
    path.write_text(RECIPES["demo"].replace(name, name + 'quantile_normalise = ["FLAIR", "T1"]\n'))
    argv = build_graph(load_experiment(path, check_paths=False))["convert"].argv
    assert argv[-2:] == ("--quantile-normalise", "FLAIR,T1")
    path.write_text(RECIPES["demo"].replace(name, name + 'quantile_normalise = ["PD"]\n'))
    with pytest.raises(UserError, match=r"quantile_normalise\[0\]"):
        load_experiment(path, check_paths=False)
    convert = 'convert_args = ["--modalities", "FLAIR"]'
    path.write_text(RECIPES["crossdataset"].replace(
        convert, 'quantile_normalise = ["FLAIR"]\n' + convert))
    graph = build_graph(load_experiment(path, check_paths=False))
    assert graph["convert.MSSEG2016"].argv[-2:] == ("--quantile-normalise", "FLAIR")
    assert graph["merge.MSSEG2016+ISBI2015+3DMRMS"].argv[-2:] == ("--quantile-normalise", "FLAIR")


@pytest.mark.slow
def test_stock_nnunet_preprocesses_it_and_keeps_the_reference(raw, scans, tmp_path):
    """Stock nnUNetv2_plan_and_preprocess on a normalised dataset: its dataset.json copy (the
    one nnUNetTrainer.on_train_start saves into the model folder) keeps the reference, and its
    preprocessed FLAIR inside the brain is one and the same affine map (nnU-Net's z-score) of
    our normalised FLAIR for every case."""
    from tiny_nnunet import nnunet_subprocess_env, run_tool

    info = normalise_dataset(raw, ["FLAIR"], workers=1)
    env = nnunet_subprocess_env(tmp_path)
    run_tool("nnUNetv2_plan_and_preprocess", "-d", "950", "-c", "3d_fullres", "-np", "1",
             "-npfp", "1", "--no_pbar", env=env)
    preprocessed = Path(env["nnUNet_preprocessed"]) / raw.name
    assert json.loads((preprocessed / "dataset.json").read_text()) == info
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    dataset = nnUNetDatasetBlosc2(str(preprocessed / "nnUNetPlans_3d_fullres"))
    fits = []
    for case in ("case_0", "case_1", "case_2", "case_3"):
        data, seg, _, _ = dataset.load_case(case)
        theirs = np.sort(np.asarray(data[0])[np.asarray(seg[0]) >= 0])
        ours = read(raw / "imagesTr" / f"{case}_0000.nii.gz")
        ours = np.sort(ours[brain_mask([ours, scans[case][1]])])
        fit = np.polyfit(ours, theirs, 1)
        np.testing.assert_allclose(np.polyval(fit, ours), theirs, atol=1e-3)
        fits.append(fit)
    np.testing.assert_allclose(fits, [fits[0]] * 4, rtol=0.02)


def test_convert_option_gives_every_scan_the_reference_quantiles(scans, tmp_path, monkeypatch):
    """`mslesseg convert folders --quantile-normalise FLAIR`: afterwards every scan's FLAIR inside
    the brain has (up to ties) the stored reference's quantiles; a missing dataset id is a
    one-line error (exit 2)."""
    src = tmp_path / "src"
    for case, channels in scans.items():
        (src / case).mkdir(parents=True)
        for name, channel in zip(("flair", "t1"), channels):
            nib.save(nib.Nifti1Image(channel.astype(np.int16), np.eye(4)),
                     src / case / f"{name}.nii.gz")
        if case != "case_4":
            nib.save(nib.Nifti1Image((channels[0] > 150).astype(np.uint8), np.eye(4)),
                     src / case / "mask.nii.gz")
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    assert main(["convert", "folders", str(src), "--dataset-id", "951", "--name", "Q",
                 "--channel", "FLAIR={case}/flair.nii.gz", "--channel", "T1={case}/t1.nii.gz",
                 "--label", "{case}/mask.nii.gz", "--workers", "1",
                 "--quantile-normalise", "FLAIR"]) == 0
    raw = tmp_path / "nnUNet_raw" / "Dataset951_Q"
    info = json.loads((raw / "dataset.json").read_text())
    reference = np.asarray(info["quantile_normalisation"]["channels"]["0"]["quantiles"])
    images = sorted(raw.glob("images*/*_0000.nii.gz"))
    assert len(images) == 5 and list(info["quantile_normalisation"]["channels"]) == ["0"]
    for flair in images:
        t1 = read(flair.with_name(flair.name.replace("_0000", "_0001")))
        values = read(flair)[brain([read(flair), t1])]
        quantiles = np.quantile(values, np.linspace(0, 1, 101))
        np.testing.assert_allclose(quantiles, reference[::10], atol=0.02 * np.ptp(reference))
    assert main(["normalise", "dataset", "-d", "952"]) == 2
