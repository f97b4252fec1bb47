"""`mslesseg ensemble`: streamed fusion of nnU-Net probability folders."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from ensemble_helpers import AFFINE, lesion_xyz, softmax_probabilities, write_member
from mslesseg_nnunet.ensembles.fusion import RunningMean, fuse_case
from mslesseg_nnunet.ensembles.members import open_member
from mslesseg_nnunet.postprocessing.madseg import madseg_mask

SHAPE = (12, 10, 8)  # x, y, z
CASES = ("case_a", "case_b")


def make_members(root: Path, kinds: list[str], seed: int = 0) -> tuple[list[Path], dict]:
    rng = np.random.default_rng(seed)
    folders, probs = [], {}
    for i, kind in enumerate(kinds):
        n_classes = {"binary": 2, "msl": 4, "dbl": 3}[kind]
        probs[i] = {c: softmax_probabilities(rng, n_classes, SHAPE) for c in CASES}
        folders.append(write_member(root / f"m{i}_{kind}", probs[i], kind))
    return folders, probs


def load_fused(out: Path, case: str) -> np.ndarray:
    return np.load(out / f"{case}.npz")["probability"]


def test_weighted_mean_equals_numpy(tmp_path, run_cli):
    folders, probs = make_members(tmp_path, ["binary", "binary", "msl"])
    weights = [1.0, 2.0, 0.5]
    out = tmp_path / "ens"
    run_cli("ensemble", "-i", *folders, "-o", out, "--weights", *weights)
    kinds = ["binary", "binary", "msl"]
    for case in CASES:
        expected = sum(w * lesion_xyz(probs[i][case], k)
                       for i, (w, k) in enumerate(zip(weights, kinds))) / sum(weights)
        np.testing.assert_allclose(load_fused(out, case), expected, rtol=0, atol=1e-6)
        mask = nib.load(out / f"{case}.nii.gz")
        np.testing.assert_array_equal(np.asarray(mask.dataobj), (expected > 0.5).astype(np.uint8))
        assert np.array_equal(mask.affine, AFFINE)
    manifest = json.loads((out / "ensemble.json").read_text())
    assert [m["folder"] for m in manifest["members"]] == [str(f) for f in folders]
    assert [m["weight"] for m in manifest["members"]] == weights
    assert manifest["rule"] == "mean" and manifest["kind"] == "mixed"
    digest = hashlib.sha256((folders[2] / "case_b.npz").read_bytes()).hexdigest()
    assert manifest["inputs_sha256"]["case_b"][2] == digest
    assert manifest["versions"]["nnunetv2"].startswith("2.8")


def test_madseg_rule_from_msl_and_dbl_members(tmp_path, run_cli):
    folders, probs = make_members(tmp_path, ["msl", "msl", "dbl"], seed=1)
    params = tmp_path / "tuned.json"
    params.write_text(json.dumps({"params": {"rule": "madseg", "mix": 0.7, "prob_threshold": 0.6,
                                             "volume_threshold": 20}}))
    out = tmp_path / "ens"
    run_cli("ensemble", "-i", *folders, "-o", out, "--params", params)
    for case in CASES:
        p_msl = (lesion_xyz(probs[0][case], "msl") + lesion_xyz(probs[1][case], "msl")) / 2
        p_dbl = lesion_xyz(probs[2][case], "dbl")
        np.testing.assert_allclose(load_fused(out, case), 0.7 * p_msl + 0.3 * p_dbl, atol=1e-6)
        expected = madseg_mask(p_msl.astype(np.float32), p_dbl.astype(np.float32), mix=0.7,
                               volume_threshold=20, prob_threshold=0.6)
        np.testing.assert_array_equal(np.asarray(nib.load(out / f"{case}.nii.gz").dataobj), expected)
    assert json.loads((out / "ensemble.json").read_text())["params"]["mix"] == 0.7


def test_ensemble_folders_can_be_members(tmp_path, run_cli):
    folders, probs = make_members(tmp_path, ["binary", "binary"], seed=2)
    run_cli("ensemble", "-i", folders[0], "-o", tmp_path / "e0")
    run_cli("ensemble", "-i", folders[1], "-o", tmp_path / "e1")
    run_cli("ensemble", "-i", tmp_path / "e0", tmp_path / "e1", "-o", tmp_path / "both")
    direct = tmp_path / "direct"
    run_cli("ensemble", "-i", *folders, "-o", direct)
    for case in CASES:
        np.testing.assert_allclose(load_fused(tmp_path / "both", case), load_fused(direct, case),
                                   atol=1e-7)


def test_running_mean_is_weighted_sum_then_divide():
    acc = RunningMean()
    for value, weight in ((1.0, 1.0), (2.0, 2.0), (6.0, 1.0)):
        acc.add(np.full((3,), value, np.float32), weight)
    assert acc.mean().tolist() == [2.75, 2.75, 2.75] and acc.weight == 4.0


def test_binary_case_matches_nnunetv2_ensemble(tmp_path, run_cli):
    folders, _ = make_members(tmp_path, ["binary", "binary", "binary"], seed=3)
    stock = tmp_path / "stock"
    env = {**os.environ, "nnUNet_raw": str(tmp_path), "nnUNet_preprocessed": str(tmp_path),
           "nnUNet_results": str(tmp_path)}
    exe = Path(sys.executable).parent / "nnUNetv2_ensemble"
    subprocess.run([str(exe), "-i", *map(str, folders), "-o", str(stock), "--save_npz", "-np", "1"],
                   check=True, env=env, capture_output=True)
    ours = tmp_path / "ours"
    run_cli("ensemble", "-i", *folders, "-o", ours)
    for case in CASES:
        theirs = np.load(stock / f"{case}.npz")["probabilities"][1].transpose(2, 1, 0)
        np.testing.assert_array_equal(load_fused(ours, case), theirs)
        seg = np.asarray(nib.load(stock / f"{case}.nii.gz").dataobj)
        np.testing.assert_array_equal(np.asarray(nib.load(ours / f"{case}.nii.gz").dataobj), seg)


def _expect_error(run_cli, out: Path, *args, match: str):
    proc = run_cli("ensemble", *args, "-o", out, check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and match in proc.stderr, proc.stderr
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp")]


def test_errors_leave_nothing_behind(tmp_path, run_cli):
    rng = np.random.default_rng(4)
    good = write_member(tmp_path / "good", {c: softmax_probabilities(rng, 2, SHAPE) for c in CASES})
    ambiguous = write_member(tmp_path / "ambiguous",
                             {c: softmax_probabilities(rng, 4, SHAPE) for c in CASES},
                             kind="msl", with_lesion_labels=False)
    other_shape = write_member(tmp_path / "shape", {
        "case_a": softmax_probabilities(rng, 2, SHAPE),
        "case_b": softmax_probabilities(rng, 2, (12, 10, 9))})
    fewer = write_member(tmp_path / "fewer", {"case_a": softmax_probabilities(rng, 2, SHAPE)})
    out = tmp_path / "out"
    _expect_error(run_cli, out, "-i", good, ambiguous, match="incompatible label set")
    _expect_error(run_cli, out, "-i", good, other_shape, match="probability shape")
    _expect_error(run_cli, out, "-i", good, fewer, match="case set differs")
    _expect_error(run_cli, out, "-i", good, "--rule", "madseg", match="msl or dbl")
    _expect_error(run_cli, out, "-i", good, tmp_path / "nope", match="folder not found")
    _expect_error(run_cli, out, "-i", good, "--weights", "1", "2", match="--weights")
    (out).mkdir()
    (out / "keep.txt").write_text("x")
    proc = run_cli("ensemble", "-i", good, "-o", out, check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    run_cli("ensemble", "-i", good, "-o", out, "--overwrite")
    assert not (out / "keep.txt").exists() and (out / "case_a.nii.gz").exists()


def test_fusion_memory_does_not_grow_with_members(tmp_path):
    """40 members of 1 MiB lesion maps: holding them would need > 40 MiB; streaming holds
    the accumulator plus the few members in flight (about 15 MiB)."""
    rng = np.random.default_rng(5)
    shape = (64, 64, 64)
    members = [open_member(write_member(tmp_path / f"m{i}",
                                        {"c": softmax_probabilities(rng, 2, shape)}))
               for i in range(40)]
    tracemalloc.start()
    with ThreadPoolExecutor(2) as pool:
        fused = fuse_case(members, [1.0] * 40, "c", "mean", pool)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert fused.groups["all"].shape == shape and len(fused.digests) == 40
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_nnunet_reader_orders_are_undone(tmp_path):
    """Arrays as nnU-Net's SimpleITK, nibabel and reorienting nibabel readers give them come
    back in the file's own axis order."""
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIO, NibabelIOWithReorient
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from mslesseg_nnunet.ensembles.members import to_nibabel_order

    data = np.random.default_rng(6).random((5, 6, 7)).astype(np.float32)
    path = tmp_path / "las.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), path)  # LAS-like: x flipped
    for reader in (SimpleITKIO(), NibabelIO(), NibabelIOWithReorient()):
        array, props = reader.read_images([str(path)])
        np.testing.assert_array_equal(to_nibabel_order(array[0], props), data)
