"""`mslesseg synth`: synthetic MSLesSeg / MSSEG-2 trees compared with the real files."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesseg_nnunet.components import label_components

MODS = ("FLAIR", "T1", "T2")
REAL_SCANS = {"P18_T1": (770, 3), "P39_T1": (72872, 35)}


def _load(path: Path):
    img = nib.load(str(path))
    return img, np.asanyarray(img.dataobj)


def _digests(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _flair_contrast(flair: np.ndarray, mask: np.ndarray) -> float:
    """Mean FLAIR in the lesions over the median of the brain outside them."""
    lesion = mask > 0
    brain = (flair > 0) & ~lesion
    return float(flair[lesion].mean() / np.median(flair[brain]))


@pytest.fixture(scope="module")
def mslesseg3(tmp_path_factory, run_cli_module):
    """A coarse (3 mm) synthetic MSLesSeg tree: 3 training patients, 2 test patients."""
    out = tmp_path_factory.mktemp("synth") / "mslesseg"
    run_cli_module("synth", "mslesseg", out, "--patients", 3, "--test-patients", 2,
                   "--timepoints", 3, "--spacing", 3, "--seed", 5)
    return out


@pytest.fixture(scope="module")
def msseg2_3(tmp_path_factory, run_cli_module):
    out = tmp_path_factory.mktemp("synth") / "msseg2"
    run_cli_module("synth", "msseg2", out, "--patients", 3, "--test-patients", 1,
                   "--spacing", 3, "--seed", 2)
    return out


@pytest.fixture(scope="module")
def run_cli_module(tmp_path_factory):
    """Module-scoped variant of conftest's ``run_cli`` (the trees are built once)."""
    import os
    import subprocess

    from conftest import mslesseg_executable

    cwd = tmp_path_factory.mktemp("cwd")

    def run(*args, check=True):
        proc = subprocess.run([mslesseg_executable(), *map(str, args)], cwd=cwd,
                              capture_output=True, text=True, env=dict(os.environ), timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"mslesseg {' '.join(map(str, args))} failed:\n{proc.stderr}")
        return proc

    return run


def test_mslesseg_layout_and_numbering(mslesseg3):
    train = sorted(p.relative_to(mslesseg3).as_posix() for p in (mslesseg3 / "train").rglob("*.nii.gz"))
    patients = sorted({p.split("/")[1] for p in train})
    assert patients == ["P1", "P2", "P3"]
    for rel in train:
        _, pat, tp, name = rel.split("/")
        assert name.startswith(f"{pat}_{tp}_") and name.removeprefix(f"{pat}_{tp}_")[:-7] in (*MODS, "MASK")
    # every training scan folder has the four files, timepoints numbered from T1 without gaps
    for pat in patients:
        tps = sorted(int(p.name[1:]) for p in (mslesseg3 / "train" / pat).iterdir())
        assert tps == list(range(1, len(tps) + 1))
        for tp in tps:
            assert sorted(f.name for f in (mslesseg3 / "train" / pat / f"T{tp}").iterdir()) == \
                sorted(f"{pat}_T{tp}_{m}.nii.gz" for m in (*MODS, "MASK"))
    assert sorted(p.name for p in (mslesseg3 / "test").iterdir()) == ["P4", "P5"]
    assert sorted(f.name for f in (mslesseg3 / "test" / "P4").iterdir()) == \
        sorted(f"P4_{m}.nii.gz" for m in (*MODS, "MASK"))
    assert not list(mslesseg3.parent.glob(".tmp-*")), "temporary folder left behind"


def test_mslesseg_coarse_headers_and_values(mslesseg3):
    for mask_path in mslesseg3.rglob("*_MASK.nii.gz"):
        mask_img, mask = _load(mask_path)
        assert mask.dtype == np.float32 and mask.shape == (61, 73, 61)
        assert set(np.unique(mask)) == {0.0, 1.0}
        assert int(mask_img.header["qform_code"]) == 1 and int(mask_img.header["sform_code"]) == 1
        expected = np.diag([-3.0, 3.0, 3.0, 1.0])
        expected[:3, 3] = (90, -126, -72)
        np.testing.assert_array_equal(mask_img.affine, expected)
        for mod in MODS:
            img, data = _load(Path(str(mask_path).replace("_MASK", f"_{mod}")))
            assert data.dtype == np.float32 and data.shape == mask.shape
            assert int(img.header["qform_code"]) == 4 and int(img.header["sform_code"]) == 4
            np.testing.assert_array_equal(img.header.get_qform(), mask_img.header.get_sform())
            assert data.min() == 0.0 and np.all(data == np.rint(data))
            assert np.all(data[mask > 0] > 0), "lesion outside the skull-stripped brain"
            assert data[0, 0, 0] == 0.0 and data[-1, -1, -1] == 0.0


def test_mslesseg_lesions_in_real_ranges(mslesseg3):
    """Per-scan lesion loads (mm3) and counts fall in the ranges of the real data."""
    for mask_path in mslesseg3.rglob("*_MASK.nii.gz"):
        _, mask = _load(mask_path)
        load_mm3 = mask.sum() * 27.0
        assert 500 <= load_mm3 <= 120_000, (mask_path.name, load_mm3)
        n = label_components(mask, 6)[1]
        assert 1 <= n <= 80, (mask_path.name, n)


def test_flair_is_hyperintense_in_the_mask(mslesseg3, real_data):
    """The lesions are where the mask says: FLAIR clearly above the rest of the brain.

    The same measure on the real scans gives 1.5 (P18) and 1.8 (P39)."""
    for name in REAL_SCANS:
        pat = name.split("_")[0]
        _, flair = _load(real_data / "train" / pat / "T1" / f"{name}_FLAIR.nii.gz")
        _, mask = _load(real_data / "train" / pat / "T1" / f"{name}_MASK.nii.gz")
        assert _flair_contrast(flair, mask) > 1.3
    for mask_path in mslesseg3.rglob("*_MASK.nii.gz"):
        _, mask = _load(mask_path)
        _, flair = _load(Path(str(mask_path).replace("_MASK", "_FLAIR")))
        assert _flair_contrast(flair, mask) > 1.3, mask_path.name
        # and the mask is not just "bright voxels": shuffling it destroys the contrast
        shifted = np.roll(mask, 7, axis=1)
        assert _flair_contrast(flair, shifted) < _flair_contrast(flair, mask) - 0.2


def test_clinical_csv_quirks_parse_back_to_masks(mslesseg3):
    text = (mslesseg3 / "info_dataset" / "clinical_data.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "Patient;Timepoint;Age;Sex;MS Type;EDSS;Lesion Number;Lesion Volume;"
    rows = list(csv.reader(lines[1:], delimiter=";"))
    scans = sorted(mslesseg3.rglob("*_MASK.nii.gz"))
    assert len(rows) == len(scans)
    for row in rows:
        assert len(row) == 9
        patient, timepoint, age, sex, ms_type, edss, lesion_number, volume, count = row
        assert "," in age and "." not in age and 18 <= float(age.replace(",", ".")) <= 80
        assert sex in ("F", "M") and ms_type in ("SMRR", "SMSP", "SMPP")
        assert 0 <= float(edss.replace(",", ".")) <= 10
        assert lesion_number == ""
        split = "test" if int(patient[1:]) > 3 else "train"
        folder = mslesseg3 / split / patient / ("" if split == "test" else timepoint)
        stem = patient if split == "test" else f"{patient}_{timepoint}"
        _, mask = _load(folder / f"{stem}_MASK.nii.gz")
        assert int(volume) == int(mask.sum())
        assert int(count) == label_components(mask, 6)[1]
    for mod in MODS:
        table = (mslesseg3 / "info_dataset" / "patient_scanners_info"
                 / f"patient_scanners_info_{mod}.csv").read_text().splitlines()
        assert table[0].split(";")[:5] == ["Patient", "Timepoint", "MANUFACTURER", "SCANNER",
                                           "SliceThickness[mm]"]
        assert len(table) == len(scans) + 1


def test_same_seed_same_bytes_other_seed_differs(tmp_path, run_cli):
    args = ("--patients", 1, "--test-patients", 0, "--timepoints", 2, "--spacing", 4)
    run_cli("synth", "mslesseg", tmp_path / "a", *args, "--seed", 3)
    run_cli("synth", "mslesseg", tmp_path / "b", *args, "--seed", 3, "--workers", 1)
    run_cli("synth", "mslesseg", tmp_path / "c", *args, "--seed", 4, "--workers", 1)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b
    common = [k for k in a.keys() & c.keys() if k.endswith("FLAIR.nii.gz")]
    assert common and all(a[k] != c[k] for k in common)
    m2 = ("--patients", 1, "--test-patients", 0, "--spacing", 4, "--seed", 3)
    run_cli("synth", "msseg2", tmp_path / "d", *m2)
    run_cli("synth", "msseg2", tmp_path / "e", *m2, "--workers", 1)
    assert _digests(tmp_path / "d") == _digests(tmp_path / "e")


def test_coarse_grid_is_fsl_2mm_grid():
    from mslesseg_nnunet.synth.grids import mni_grid

    grid = mni_grid(2)
    assert grid.shape == (91, 109, 91)         # FSL's MNI152_T1_2mm
    np.testing.assert_array_equal(grid.affine, [[-2, 0, 0, 90], [0, 2, 0, -126],
                                                [0, 0, 2, -72], [0, 0, 0, 1]])


def test_longitudinal_masks_change_but_overlap(mslesseg3):
    """Lesions persist between timepoints (overlap) while growing, shrinking or appearing."""
    pairs = 0
    for patient in (mslesseg3 / "train").iterdir():
        tps = sorted(patient.iterdir())
        for first, second in zip(tps, tps[1:]):
            m1 = _load(first / f"{patient.name}_{first.name}_MASK.nii.gz")[1] > 0
            m2 = _load(second / f"{patient.name}_{second.name}_MASK.nii.gz")[1] > 0
            dice = 2 * (m1 & m2).sum() / (m1.sum() + m2.sum())
            assert 0.3 < dice < 0.99, (patient.name, dice)
            pairs += 1
    assert pairs >= 1


@pytest.mark.slow
def test_one_mm_scan_matches_real_headers_and_ranges(tmp_path, run_cli, real_data):
    """A 1 mm synthetic scan against the real P18_T1 / P39_T1 files, field by field."""
    out = tmp_path / "one"
    run_cli("synth", "mslesseg", out, "--patients", 1, "--test-patients", 0,
            "--timepoints", 1, "--seed", 11)
    for mod in ("FLAIR", "T1", "MASK"):
        real_img, real = _load(real_data / "train" / "P18" / "T1" / f"P18_T1_{mod}.nii.gz")
        syn_img, syn = _load(out / "train" / "P1" / "T1" / f"P1_T1_{mod}.nii.gz")
        assert syn.shape == real.shape == (182, 218, 182) and syn.dtype == real.dtype
        for field in ("qform_code", "sform_code", "srow_x", "srow_y", "srow_z", "pixdim",
                      "xyzt_units", "quatern_b", "quatern_c", "quatern_d", "qoffset_x",
                      "qoffset_y", "qoffset_z", "descrip"):
            np.testing.assert_array_equal(syn_img.header[field], real_img.header[field], field)
        if mod == "MASK":
            assert set(np.unique(syn)) == {0.0, 1.0}
            n = label_components(syn, 6)[1]
            assert 744 <= syn.sum() <= 80_000 and 1 <= n <= 80
        else:
            brain = syn > 0
            assert 1.4e6 < brain.sum() < 2.4e6      # real: 1.85e6 - 1.92e6
            # brain median within the real scans' span (FLAIR 138-650, T1 475-781), with margin
            lo, hi = {"FLAIR": (80, 1100), "T1": (250, 1400)}[mod]
            assert lo < np.median(syn[brain]) < hi


def test_msseg2_tree(msseg2_3):
    training = msseg2_3 / "training"
    assert sorted(p.name for p in training.iterdir()) == ["013", "015", "016"]
    assert sorted(p.name for p in (msseg2_3 / "testing").iterdir()) == ["001"]
    assert sorted(p.name for p in (msseg2_3 / "testing" / "001").iterdir()) == [
        "flair_time01_on_middle_space.nii.gz", "flair_time02_on_middle_space.nii.gz"]
    empty, disagree, shapes = 0, 0, set()
    for patient in training.iterdir():
        names = sorted(p.name for p in patient.iterdir())
        assert names == sorted(["flair_time01_on_middle_space.nii.gz",
                                "flair_time02_on_middle_space.nii.gz", "ground_truth.nii.gz"]
                               + [f"ground_truth_expert{k}.nii.gz" for k in range(1, 5)])
        ref_img, _ = _load(patient / "flair_time01_on_middle_space.nii.gz")
        spacing = np.array(ref_img.header.get_zooms()[:3])
        assert spacing.max() / spacing.min() > 1.02, "middle space should be anisotropic"
        shapes.add(ref_img.shape)
        for path in patient.iterdir():
            img, _ = _load(path)
            assert img.shape == ref_img.shape
            np.testing.assert_allclose(img.affine, ref_img.affine)
        _, gt = _load(patient / "ground_truth.nii.gz")
        assert set(np.unique(gt)) <= {0, 1}
        experts = [_load(patient / f"ground_truth_expert{k}.nii.gz")[1] for k in range(1, 5)]
        # MSSEG-2's consensus: lesions of 3 of the 4 experts, then the voxel-wise majority
        np.testing.assert_array_equal(gt, (np.sum(experts, axis=0) >= 3).astype(gt.dtype))
        empty += int(gt.sum() == 0)
        disagree += sum(int(np.any(e != gt)) for e in experts)
        if gt.sum():
            _, t1 = _load(patient / "flair_time01_on_middle_space.nii.gz")
            _, t2 = _load(patient / "flair_time02_on_middle_space.nii.gz")
            assert t2[gt > 0].mean() > 1.15 * t1[gt > 0].mean(), "new lesions must appear at time 2"
    assert empty >= 1 and empty < 3
    assert disagree >= 1
    assert len(shapes) == 3, "grids should differ between patients"


@pytest.mark.parametrize("args, fragment", [
    (("--timepoints", "5"), "--timepoints"),
    (("--spacing", "0.5"), "--spacing"),
    (("--patients", "0"), "--patients"),
    (("--patients", "x"), "--patients"),
])
def test_invalid_options_exit_2_one_line_nothing_left(tmp_path, run_cli, args, fragment):
    out = tmp_path / "never"
    proc = run_cli("synth", "mslesseg", out, *args, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and fragment in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_existing_output_needs_overwrite(tmp_path, run_cli):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    proc = run_cli("synth", "msseg2", out, "--patients", 1, "--test-patients", 0,
                   "--spacing", 4, "--workers", 1, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--overwrite" in proc.stderr and str(out) in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    run_cli("synth", "msseg2", out, "--patients", 1, "--test-patients", 0, "--spacing", 4,
            "--workers", 1, "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["training"]


def test_unwritable_output_exit_2(tmp_path, run_cli):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("synth", "mslesseg", blocker / "out", "--spacing", 4, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert str(blocker) in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
