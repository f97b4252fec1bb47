"""`mslesseg predict` on untrained (random-weight) nnU-Net models: plumbing, geometry, resume."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile

import nibabel as nib
import numpy as np
import pytest

from predict_helpers import flair_only_model, make_models, mslesseg_test_folder, plan_tiny_datasets
from reliability_helpers import run_or_kill, tree_digest
from tiny_nnunet import run_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    tiny = plan_tiny_datasets(root / "nnunet")
    models = make_models(tiny)
    test_dir = mslesseg_test_folder(tiny, root / "test")
    return tiny, models, test_dir


def predict(tiny, *args, check=True):
    return run_tool("mslesseg", "predict", "--device", "cpu", "--workers", "0",
                    "--disable-tta", *map(str, args), env=tiny.env) if check else None


def test_mslesseg_folder_round_trip_resume_and_overwrite(setup, tmp_path):
    tiny, models, test_dir = setup
    out = tmp_path / "out"
    predict(tiny, "-i", test_dir, "-o", out, "--models", models["msl"], models["dbl"])
    masks = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz"))
    assert masks == ["P54/P54_MASK.nii.gz", "P55/P55_MASK.nii.gz"]
    for mask in masks:
        source = nib.load(test_dir / mask.replace("MASK", "FLAIR"))
        written = nib.load(out / mask)
        assert written.shape == source.shape and written.get_data_dtype() == np.uint8
        for field in ("qform_code", "sform_code", "srow_x", "srow_y", "srow_z", "pixdim",
                      "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"):
            assert np.array_equal(written.header[field], source.header[field]), field
        assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1}
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == masks
        assert archive.read(masks[0]) == (out / masks[0]).read_bytes()
    manifest = json.loads((out / "ensemble.json").read_text())
    assert [m["model"] for m in manifest["members"]] == [str(models["msl"]), str(models["dbl"])]
    assert {m["kind"] for m in manifest["members"]} == {"msl", "dbl"}
    assert manifest["members"][0]["trainer"] == "nnUNetTrainer"
    assert manifest["members"][0]["folds"] == ["0"] and manifest["rule"] == "madseg"
    assert sorted(manifest["cases"].values()) == masks
    assert sorted(manifest["inputs_sha256"]) == sorted(manifest["cases"])
    assert not (out / ".work").exists()

    stamps = {m: (out / m).stat().st_mtime_ns for m in masks}
    (out / masks[1]).unlink()
    proc = predict(tiny, "-i", test_dir, "-o", out, "--models", models["msl"], models["dbl"])
    assert "1 of 2 cases to predict" in proc.stdout and (out / masks[1]).is_file()
    assert (out / masks[0]).stat().st_mtime_ns == stamps[masks[0]]   # finished case skipped
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == masks
    proc = predict(tiny, "-i", test_dir, "-o", out, "--models", models["msl"], models["dbl"],
                   "--overwrite")
    assert "2 of 2 cases to predict" in proc.stdout
    assert all((out / m).stat().st_mtime_ns != t for m, t in stamps.items())


def test_ensemble_of_predictions_equals_joint_prediction(setup, tmp_path, run_cli):
    """Fusing two single-model `predict` outputs gives the joint prediction, in its layout."""
    tiny, models, test_dir = setup
    for name in ("msl", "dbl", "joint"):
        members = [models["msl"], models["dbl"]] if name == "joint" else [models[name]]
        predict(tiny, "-i", test_dir, "-o", tmp_path / name, "--models", *members,
                "--save-probabilities")
    ens = tmp_path / "ens"
    run_cli("ensemble", "-i", tmp_path / "msl", tmp_path / "dbl", "-o", ens, "--rule", "madseg")
    joint = json.loads((tmp_path / "joint" / "ensemble.json").read_text())
    manifest = json.loads((ens / "ensemble.json").read_text())
    assert manifest["cases"] == joint["cases"] and manifest["rule"] == "madseg"
    for case, mask in joint["cases"].items():
        np.testing.assert_array_equal(np.asarray(nib.load(ens / mask).dataobj),
                                      np.asarray(nib.load(tmp_path / "joint" / mask).dataobj))
        assert nib.load(ens / mask).header == nib.load(tmp_path / "joint" / mask).header
        np.testing.assert_allclose(np.load(ens / "probabilities" / f"{case}.npz")["probability"],
                                   np.load(tmp_path / "joint" / "probabilities" / f"{case}.npz")["probability"],
                                   atol=1e-6)
    with zipfile.ZipFile(ens / "submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted(joint["cases"].values())
    predict(tiny, "-i", test_dir, "-o", tmp_path / "bare", "--models", models["msl"])
    proc = run_cli("ensemble", "-i", tmp_path / "bare", tmp_path / "dbl", "-o", tmp_path / "e2",
                   check=False)
    assert proc.returncode == 2 and "--save-probabilities" in proc.stderr
    assert f"{tmp_path / 'bare'}: prediction without probabilities/" in proc.stderr
    assert not (tmp_path / "e2").exists()


def test_binary_model_matches_nnunetv2_predict(setup, tmp_path):
    """One binary model, mean rule at 0.5: the same mask as stock nnU-Net's argmax."""
    tiny, models, _ = setup
    images = tiny.raw_dir("binary") / "imagesTr"
    inputs = tmp_path / "imagesTs"
    inputs.mkdir()
    for path in images.glob("tiny_00[01]_*.nii.gz"):
        (inputs / path.name).symlink_to(path)
    stock = tmp_path / "stock"
    run_tool("nnUNetv2_predict", "-i", inputs, "-o", stock, "-d", "901", "-c", "3d_fullres",
             "-tr", "nnUNetTrainer", "-p", "nnUNetPlansCPU", "-f", "0", "-device", "cpu",
             "--disable_tta", "-npp", "1", "-nps", "1", env=tiny.env)
    out = tmp_path / "ours"
    predict(tiny, "-i", inputs, "-o", out, "--models", models["binary"], "--save-probabilities")
    for case in ("tiny_000", "tiny_001"):
        theirs = nib.load(stock / f"{case}.nii.gz")
        ours = nib.load(out / f"{case}.nii.gz")
        np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))
        assert np.array_equal(ours.affine, nib.load(inputs / f"{case}_0000.nii.gz").affine)
        prob = np.load(out / "probabilities" / f"{case}.npz")["probability"]
        assert prob.shape == ours.shape


def test_models_with_different_channels(setup, tmp_path, run_cli):
    """BeckLab: the union of a FLAIR-only and a FLAIR+T1 model. Each reads its own channels:
    the joint run equals the two single runs; a FLAIR-only input serves the FLAIR-only model
    alone and is refused for the pair, naming the missing channel."""
    tiny, models, test_dir = setup
    flair = flair_only_model(tiny, models["binary"])
    one, flair_dir = tmp_path / "one" / "P54", tmp_path / "flair_input" / "P54"  # one case: quick
    for folder, modalities in ((one, ("FLAIR", "T1")), (flair_dir, ("FLAIR",))):
        folder.mkdir(parents=True)
        for modality in modalities:
            (folder / f"P54_{modality}.nii.gz").symlink_to(test_dir / "P54" / f"P54_{modality}.nii.gz")
    one, flair_dir = one.parent, flair_dir.parent
    # The pair as `tune --select-members --rule union` would leave it: the MSL model is not run.
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"params": {"rule": "union"}, "members": [
        {"model": f"{m.parent.name}/{m.name}", "weight": 1.0} for m in (flair, models["binary"])]}))
    runs = {"flair": (flair_dir, [flair]), "binary": (one, [models["binary"]]),
            "both": (one, [flair, models["binary"], models["msl"], "--params", tuned])}
    for name, (src, args) in runs.items():
        predict(tiny, "-i", src, "-o", tmp_path / name, "--save-probabilities", "--models", *args)
    manifest = json.loads((tmp_path / "both" / "ensemble.json").read_text())
    assert [m["model"] for m in manifest["members"]] == [str(flair), str(models["binary"])]
    cases = manifest["cases"]
    for case, mask in cases.items():
        single = {n: np.asarray(nib.load(tmp_path / n / mask).dataobj) for n in ("flair", "binary")}
        np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "both" / mask).dataobj),
                                      single["flair"] | single["binary"])
        prob = {n: np.load(tmp_path / n / "probabilities" / f"{case}.npz")["probability"]
                for n in runs}
        np.testing.assert_allclose(prob["both"], np.maximum(prob["flair"], prob["binary"]), atol=1e-6)
    proc = run_cli("predict", "-i", flair_dir, "-o", tmp_path / "refused", "--models", flair,
                   models["binary"], "--device", "cpu", env=tiny.env, check=False)
    assert proc.returncode == 2 and "missing T1 modality" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("case", ["missing_fold", "missing_checkpoint", "corrupt_checkpoint",
                                  "missing_modality",
                                  "incompatible_rule", "unknown_member"])
def test_predict_errors_leave_nothing(setup, tmp_path, run_cli, case):
    tiny, models, test_dir = setup
    model_args = ["--models", models["msl"], models["dbl"]]
    src = test_dir
    if case == "missing_fold":
        model_args += ["--folds", "0", "3"]
        match = "fold_3"
    elif case == "missing_checkpoint":
        (models["binary"].parent / "other").mkdir(exist_ok=True)
        broken = models["binary"].parent / "other" / "nnUNetTrainer__nnUNetPlansCPU__3d_fullres"
        (broken / "fold_0").mkdir(parents=True, exist_ok=True)
        for name in ("plans.json", "dataset.json"):
            (broken / name).write_bytes((models["binary"] / name).read_bytes())
        model_args = ["--models", broken]
        match = "checkpoint_final.pth: checkpoint not found"
    elif case == "corrupt_checkpoint":  # issue 13: truncated to half, no traceback, no OUT/.work
        broken = models["binary"].parent / "corrupt" / models["binary"].name
        shutil.copytree(models["binary"], broken, dirs_exist_ok=True)
        checkpoint = broken / "fold_0" / "checkpoint_final.pth"
        checkpoint.write_bytes(checkpoint.read_bytes()[:checkpoint.stat().st_size // 2])
        model_args = ["--models", broken]
        match = "fold_0/checkpoint_final.pth: not a readable checkpoint (PytorchStreamReader"
    elif case == "missing_modality":
        src = tmp_path / "test"
        for patient in test_dir.iterdir():
            (src / patient.name).mkdir(parents=True)
            for image in patient.iterdir():
                if image.name != "P55_T1.nii.gz":
                    (src / patient.name / image.name).symlink_to(image)
        match = "T1"
    elif case == "incompatible_rule":
        params = tmp_path / "tuned.json"
        params.write_text(json.dumps({"params": {"rule": "madseg"}}))
        model_args = ["--models", models["binary"], "--params", params]
        match = "msl or dbl"
    else:
        params = tmp_path / "tuned.json"
        params.write_text(json.dumps({"params": {}, "members": [{"model": "Dataset9_X/T__P__C"}]}))
        model_args += ["--params", params]
        match = "chosen member Dataset9_X/T__P__C is not among the given inputs"
    out = tmp_path / "out"
    proc = run_cli("predict", "-i", src, "-o", out, *model_args, "--device", "cpu",
                   "--workers", "0", env=tiny.env, check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mslesseg predict: error:") and match in last, proc.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_killed_predict_resumes_honestly_to_the_same_bytes(setup, tmp_path):
    """Issue 13 (defects 2, 7, fault injection): ``predict`` killed at a random moment
    refuses a resume with other parameters (naming them), and a resume with the
    same ones ends with the bytes of an uninterrupted run: masks, submission.zip and
    ensemble.json (whose ``inputs_sha256`` covers every case; it is left out of the byte
    comparison because nnU-Net's .npz files carry their write time)."""
    tiny, models, test_dir = setup
    args = [sys.executable, "-m", "mslesseg_nnunet.cli", "predict", "--device", "cpu",
            "--workers", "0", "--disable-tta", "-i", str(test_dir), "--models",
            str(models["binary"])]
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"params": {"threshold": 0.6}}))

    def outputs(out):
        manifest = json.loads((out / "ensemble.json").read_text())
        assert sorted(manifest.pop("inputs_sha256")) == sorted(manifest["cases"])
        return {**tree_digest(out), "ensemble.json": manifest}

    start = time.monotonic()
    run_or_kill([*args, "-o", str(tmp_path / "ref")], tiny.env, None)
    seconds = time.monotonic() - start
    reference = outputs(tmp_path / "ref")
    out = tmp_path / "out"  # killed at a random moment after it recorded its identity
    run_or_kill([*args, "-o", str(out)], tiny.env,
                np.random.default_rng(1).uniform(0.0, 0.6) * seconds, out / ".work" / "identity.json")
    proc = subprocess.run([*args, "-o", str(out), "--params", str(tuned)], env=tiny.env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "other params (threshold)" in proc.stderr, proc.stderr
    run_or_kill([*args, "-o", str(out)], tiny.env, None)
    assert outputs(out) == reference
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
