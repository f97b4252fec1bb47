"""Reliability (issue 13): bad inputs refused in one line, replacements atomic, runs exclusive,
resumes honest, interrupted runs recoverable to the bytes of an uninterrupted one."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ensemble_helpers import softmax_probabilities, write_member
from eval_helpers import write_mask
from fake_trees import write_mslesseg_tree
from reliability_helpers import run_or_kill, tree_digest
from mslesseg_nnunet import cli
from mslesseg_nnunet.atomic import atomic_dir, recover
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.experiment import RECIPES, load_experiment
from mslesseg_nnunet.nifti import read_volume

NNUNET_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def mslesseg(capsys, *args) -> tuple[int, str, str]:
    """Run ``mslesseg ARGS`` in process: exit code, the last stderr line (argparse errors
    exit through SystemExit) and stdout; an uncaught exception fails the test."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    return code, err[-1] if err else "", captured.out


@pytest.fixture
def nnunet(tmp_path, monkeypatch) -> Path:
    for var in NNUNET_VARS:
        monkeypatch.setenv(var, str(tmp_path / "nnunet" / var))
    return tmp_path / "nnunet"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def small_tree(root: Path, seed: int = 0) -> Path:
    return write_mslesseg_tree(root, {1: 1, 2: 1, 3: 1}, test_patients=(54,), shape=(12, 14, 12),
                               seed=seed)


def test_truncated_or_corrupt_images_refused(tmp_path, nnunet, capsys):
    """Defect 1: a half-length FLAIR (convert), a gzip trailer with a wrong CRC (predict
    inputs) and a short uncompressed mask (evaluate, native) are one-line errors."""
    src = small_tree(tmp_path / "src")
    flair = src / "train" / "P2" / "T1" / "P2_T1_FLAIR.nii.gz"
    data = flair.read_bytes()
    flair.write_bytes(data[:len(data) // 2])
    code, err, _ = mslesseg(capsys, "convert", "mslesseg", src, "--dataset-id", 101, "--workers", 1)
    assert code == 2 and str(flair) in err and "truncated" in err, err
    assert not any((nnunet / "nnUNet_raw").iterdir())

    test = src / "test" / "P54" / "P54_T1.nii.gz"
    packed = bytearray(test.read_bytes())
    packed[-8] ^= 0xFF  # CRC of the gzip trailer: nibabel alone reads the voxels happily
    test.write_bytes(bytes(packed))
    from mslesseg_nnunet.dataset_conversion import prepare_prediction_inputs
    with pytest.raises(UserError, match="P54_T1.nii.gz: truncated or corrupt gzip"):
        prepare_prediction_inputs(src / "test", tmp_path / "inputs")
    assert not (tmp_path / "inputs").exists()

    mask = write_mask(tmp_path / "mask.nii", np.ones((6, 6, 6), np.uint8))
    mask.write_bytes(mask.read_bytes()[:-50])
    with pytest.raises(UserError, match=r"mask.nii: truncated NIfTI file \(518 of 568 bytes\)"):
        read_volume(mask)


def test_output_overlapping_an_input_is_refused_before_anything_is_deleted(tmp_path, capsys):
    """Defect 3: ``ensemble -i X Y -o Y --overwrite`` and ``predict -i v -o v --overwrite``."""
    rng = np.random.default_rng(0)
    members = [write_member(tmp_path / name, {"c1": softmax_probabilities(rng, 2, (5, 6, 4))})
               for name in ("x", "y")]
    before = tree_digest(members[1])
    code, err, _ = mslesseg(capsys, "ensemble", "-i", *members, "-o", members[1], "--overwrite")
    assert code == 2 and "overlaps the input" in err and tree_digest(members[1]) == before, err
    code, err, _ = mslesseg(capsys, "ensemble", "-i", *members, "-o", members[1] / "sub")
    assert code == 2 and "overlaps the input" in err, err

    test = small_tree(tmp_path / "src") / "test"
    before = tree_digest(test)
    model = members[0]  # refused before the model is opened
    code, err, _ = mslesseg(capsys, "predict", "-i", test, "-o", test, "--models", model,
                         "--overwrite", "--blending", "gaussian")
    assert code == 2 and "overlaps the input" in err and tree_digest(test) == before, err


def test_non_finite_numbers_refused_everywhere(tmp_path, capsys):
    """Defect 6 and the shared validator: CLI options, JSON parameters, experiment files."""
    rng = np.random.default_rng(0)
    members = [write_member(tmp_path / n, {"c1": softmax_probabilities(rng, 2, (5, 6, 4))})
               for n in ("a", "b")]
    for args in (["ensemble", "-i", *members, "-o", tmp_path / "e", "--weights", "nan", "1"],
                 ["ensemble", "-i", *members, "-o", tmp_path / "e", "--weights", "inf", "1"],
                 ["evaluate", "--protocol", "msseg2", "--min-volume", "nan", tmp_path, tmp_path,
                  "-o", tmp_path / "m.csv"],
                 ["relabel", "dbl", "--source", 1, "--dataset-id", 2, "--distance2", "inf"]):
        code, err, _ = mslesseg(capsys, *args)
        assert code == 2 and "finite number" in err, (args, err)
    assert not (tmp_path / "e").exists()
    tuned = tmp_path / "tuned.json"
    tuned.write_text('{"params": {"min_size": Infinity}}')
    code, err, _ = mslesseg(capsys, "ensemble", "-i", *members, "-o", tmp_path / "e", "--params", tuned)
    assert code == 2 and "min_size: expected a finite number" in err, err
    tuned.write_text('{"params": {}, "members": [{"model": "D/T__P__C", "weight": NaN}]}')
    code, err, _ = mslesseg(capsys, "ensemble", "-i", *members, "-o", tmp_path / "e", "--params", tuned)
    assert code == 2 and "'members' must be" in err, err
    demo = tmp_path / "demo.toml"
    demo.write_text(RECIPES["demo"].replace("spacing = 3.0", "spacing = nan"))
    with pytest.raises(UserError, match=r"\[source\] spacing: nan is not a finite number"):
        load_experiment(demo, check_paths=False)


def test_experiment_test_folders_checked_with_a_synthetic_source(tmp_path):
    """Defect 9: a synthetic source that makes no test patients cannot feed the default [test]."""
    demo = tmp_path / "demo.toml"
    demo.write_text(RECIPES["demo"].replace("test_patients = 3", "test_patients = 0"))
    with pytest.raises(UserError, match=r"\[test\] input: the synthetic source makes no test"):
        load_experiment(demo)


def test_replacement_is_atomic_claimed_and_recovered(tmp_path):
    """Defects 4 and 10: a run killed between the two renames is undone by the next one
    (old folder back), stale staging folders of dead runs are removed, and a folder claimed
    by a live run is refused."""
    target = tmp_path / "Dataset101_X"
    dead = dead_pid()
    (tmp_path / f".old-{dead}-abc-{target.name}").mkdir()
    (tmp_path / f".old-{dead}-abc-{target.name}" / "old.txt").write_text("old")
    (tmp_path / f".tmp-{dead}-xyz-{target.name}").mkdir()
    (tmp_path / f".tmp-{dead}-q-P54_MASK.nii.gz").write_text("half")
    recover(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert (target / "old.txt").read_text() == "old"

    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        with pytest.raises(UserError, match="in use by another run"):
            with atomic_dir(target, overwrite=True):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    (tmp_path / f".lock-{target.name}").write_text(str(dead_pid()))  # a dead owner's claim
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "newer.txt").write_text("newer")
    assert [p.name for p in target.iterdir()] == ["newer.txt"]


def test_concurrent_convert_refused_and_overwrite_drops_stale_plans(tmp_path, nnunet, capsys):
    """Defects 5 and 11: a second convert to an id held by a live run is refused; --overwrite
    removes the replaced dataset's plans and preprocessed data (and says so)."""
    src = small_tree(tmp_path / "src")
    raw = nnunet / "nnUNet_raw"
    raw.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (raw / ".lock-Dataset101").write_text(str(holder.pid))
        code, err, _ = mslesseg(capsys, "convert", "mslesseg", src, "--dataset-id", 101)
        assert code == 2 and "in use by another run" in err, err
    finally:
        holder.kill()
        holder.wait()
    assert mslesseg(capsys, "convert", "mslesseg", src, "--dataset-id", 101, "--workers", 1)[0] == 0
    pre = nnunet / "nnUNet_preprocessed" / "Dataset101_MSLesSeg"
    (pre / "nnUNetPlans.json").write_text("{}")
    (pre / "nnUNetPlans_3d_fullres").mkdir()
    code, _, out = mslesseg(capsys, "convert", "mslesseg", src, "--dataset-id", 101,
                            "--workers", 1, "--overwrite")
    assert code == 0 and "run nnUNetv2_plan_and_preprocess again" in out
    assert sorted(p.name for p in pre.iterdir()) == ["splits_final.json"]
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset101_MSLesSeg"]


def command_arguments(tmp_path: Path, blocked: Path) -> dict[str, list]:
    """One cheap argument set per command, every output under ``blocked`` (a regular file)."""
    rng = np.random.default_rng(0)
    member = write_member(tmp_path / "m", {"c1": softmax_probabilities(rng, 2, (5, 6, 4))})
    mask = write_mask(tmp_path / "gt" / "c1.nii.gz", np.zeros((4, 6, 5), np.uint8))
    src = small_tree(tmp_path / "src")
    out = blocked / "out"
    return {
        "env": None, "trainers": None, "recipe": None,
        "synth": ["synth", "mslesseg", out, "--patients", 1],
        "convert": ["convert", "mslesseg", src, "--dataset-id", 101],
        "relabel": ["relabel", "msl", "--source", 101, "--dataset-id", 102],
        "ensemble": ["ensemble", "-i", member, "-o", out],
        "tune": ["tune", "--models", member, "--protocol", "mslesseg", "-o", out],
        "predict": ["predict", "-i", src / "test", "-o", out, "--models", member],
        "evaluate": ["evaluate", "--protocol", "mslesseg", mask.parent, mask.parent,
                     "-o", blocked / "m.csv"],
        "cpu-plans": ["cpu-plans", "-d", 101],
        "lesions": ["lesions", mask, "-o", blocked / "l.csv"],
        "run": ["run", blocked / "x.toml"],
        "status": ["status", blocked / "x.toml"],
        "demo": ["demo", "--workdir", out],
        "report": ["report", "--images", mask.parent, "--pred", mask.parent, "--gt", mask.parent,
                   "-o", out],
        "consensus": ["consensus", mask.parent, "--gt", mask.parent, "-o", out],
        "merge": ["merge", "--sources", 101, 102, "--dataset-id", 103],
        "matrix": ["matrix", "--cell", "a", "b", blocked / "m.csv", "-o", out],
        "preprocess": ["preprocess", "--flair", mask, "-o", out],
        "to-native": ["to-native", mask, "--preprocessed", tmp_path, "-o", blocked / "n.nii.gz"],
        "segment": ["segment", "--flair", mask, "--models", member, "-o", out],
        "normalise": ["normalise", "inputs", "--model", member, "-i", mask.parent, "-o", out],
        "gin-views": ["gin-views", "--source", 101, "--dataset-id", 104],
    }


def test_every_command_gives_one_line_errors_on_a_blocked_output(tmp_path, monkeypatch, capsys):
    """Defect 8: outputs and nnU-Net folders under a regular file (a file where a folder
    should be: refused even to root) give one line and exit code 2, never a traceback."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    for var in NNUNET_VARS:
        monkeypatch.setenv(var, str(blocked / var))
    commands = command_arguments(tmp_path, blocked)
    parser_names = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert set(commands) == parser_names
    for name, args in commands.items():
        if args is None:  # prints to stdout only
            continue
        code, err, _ = mslesseg(capsys, *args)
        assert code == 2 and err.startswith(f"mslesseg {name}: error:"), (name, err)


def converted(nnunet: Path) -> dict[str, str]:
    folder = nnunet / "nnUNet_raw" / "Dataset101_MSLesSeg"
    return {**tree_digest(folder),
            "splits": hashlib.sha256((nnunet / "nnUNet_preprocessed" / folder.name /
                                      "splits_final.json").read_bytes()).hexdigest()}


def test_killed_convert_overwrite_leaves_old_or_new_and_reruns_identically(tmp_path):
    """Fault injection: ``convert --overwrite`` killed (SIGKILL, whole process group) at a
    random moment (3 seeds) leaves the old dataset or the new one, whole; a rerun gives the
    bytes of an uninterrupted run and no stale folder."""
    nnunet = tmp_path / "nnunet"
    env = {**os.environ, **{v: str(nnunet / v) for v in NNUNET_VARS}}
    trees = {"old": small_tree(tmp_path / "old", 0), "new": small_tree(tmp_path / "new", 1)}

    def convert(which: str, after: float | None = None) -> None:
        run_or_kill([sys.executable, "-m", "mslesseg_nnunet.cli", "convert", "mslesseg",
                     str(trees[which]), "--dataset-id", "101", "--workers", "2", "--overwrite"],
                    env, after)

    raw = nnunet / "nnUNet_raw" / "Dataset101_MSLesSeg"
    splits = nnunet / "nnUNet_preprocessed" / raw.name / "splits_final.json"
    start = time.monotonic()
    convert("new")
    seconds = time.monotonic() - start
    new = converted(nnunet)
    convert("old")
    old = converted(nnunet)
    shutil.copytree(raw, tmp_path / "old-raw")
    shutil.copy(splits, tmp_path / "old-splits.json")
    for seed in (1, 2, 3):
        if seed > 1:  # back to the old dataset, as a convert of it leaves it
            shutil.rmtree(raw)
            shutil.copytree(tmp_path / "old-raw", raw)
            shutil.copy(tmp_path / "old-splits.json", splits)
            assert converted(nnunet) == old
        convert("new", after=np.random.default_rng(seed).uniform(0.3, 1.0) * seconds)
        state = tree_digest(nnunet / "nnUNet_raw" / "Dataset101_MSLesSeg")
        assert state in [{k: v for k, v in whole.items() if k != "splits"} for whole in (old, new)]
        convert("new")
        assert converted(nnunet) == new
        assert sorted(p.name for p in (nnunet / "nnUNet_raw").iterdir()) == ["Dataset101_MSLesSeg"]


def test_gzip_check_reads_whole_stream(tmp_path):
    """A multi-member gzip file (as pigz may write) is verified whole, not just its first part."""
    mask = write_mask(tmp_path / "m.nii", np.ones((4, 4, 4), np.uint8))
    raw = mask.read_bytes()
    both = tmp_path / "two.nii.gz"
    both.write_bytes(gzip.compress(raw[:200]) + gzip.compress(raw[200:]))
    assert read_volume(both).data.sum() == 64
    both.write_bytes(gzip.compress(raw[:200]) + gzip.compress(raw[200:])[:-3])
    with pytest.raises(UserError, match="truncated or corrupt gzip"):
        read_volume(both)
