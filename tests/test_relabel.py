"""Multi-size and distance-based labels: hand-made cases, brute force, and ``mslesseg relabel``."""
from __future__ import annotations

import itertools
import json
import os

import nibabel as nib
import numpy as np
import pytest

from fake_trees import blobs, write_mslesseg_tree
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.labelling import collapse, distance_labels, multi_size_labels


def cube_lesions(shape, sizes) -> np.ndarray:
    """A mask with one lesion of each size (voxels), rows of voxels far apart along axis 0."""
    mask = np.zeros(shape, np.uint8)
    for i, size in enumerate(sizes):
        flat = np.zeros(shape[0] * shape[1], np.uint8)
        flat[:size] = 1
        mask[:, :, 3 * i] = flat.reshape(shape[0], shape[1])
    return mask


def test_multi_size_bins_by_voxel_count():
    sizes = [1, 99, 100, 999, 1000, 1500]
    mask = cube_lesions((40, 40, 20), sizes)
    labels = multi_size_labels(mask)
    assert labels.dtype == np.uint8
    assert [int(labels[:, :, 3 * i].max()) for i in range(len(sizes))] == [1, 1, 2, 2, 3, 3]
    four = multi_size_labels(mask, thresholds=(100, 1000, 1200))
    assert int(four[:, :, 15].max()) == 4


def test_multi_size_connectivity():
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[2:10, 2:10, 2:10] = 1      # 512 voxels
    mask[10:15, 10:15, 10:15] = 1   # 125 voxels, touching the first at one corner only
    assert multi_size_labels(mask, connectivity=6)[12, 12, 12] == 2
    assert multi_size_labels(mask, connectivity=26)[12, 12, 12] == 2
    mask[10:20, 10:20, 10:15] = 1   # now 500 voxels alone, 1012 when joined by the corner
    assert multi_size_labels(mask, connectivity=6)[12, 12, 12] == 2
    assert multi_size_labels(mask, connectivity=26)[12, 12, 12] == 3


def brute_force_distance2(mask: np.ndarray) -> np.ndarray:
    """Squared distance of every voxel to the nearest background voxel, by exhaustion."""
    background = np.argwhere(mask == 0)
    out = np.zeros(mask.shape)
    for voxel in np.argwhere(mask):
        out[tuple(voxel)] = ((background - voxel) ** 2).sum(axis=1).min()
    return out


def test_distance_labels_match_brute_force():
    rng = np.random.default_rng(1)
    mask = blobs(rng, (14, 16, 12), 4, radius=(2, 4)).astype(np.uint8)
    mask[0:3, 0:16, 0:4] = 1  # a lesion on the array border
    expected = np.where(mask == 0, 0, np.where(brute_force_distance2(mask) > 4.5, 2, 1))
    np.testing.assert_array_equal(distance_labels(mask), expected)
    assert set(np.unique(expected)) == {0, 1, 2}
    np.testing.assert_array_equal(distance_labels(mask, distance2=2.0),
                                  np.where(mask == 0, 0,
                                           np.where(brute_force_distance2(mask) > 2.0, 2, 1)))


def test_relabel_then_collapse_is_identity():
    rng = np.random.default_rng(2)
    mask = blobs(rng, (30, 30, 30), 12, radius=(1, 6)).astype(np.uint8)
    for conn, thresholds in itertools.product((6, 18, 26), ((100, 1000), (10, 50, 300))):
        labels = multi_size_labels(mask, conn, thresholds)
        np.testing.assert_array_equal(collapse(labels, range(1, len(thresholds) + 2)), mask)
    np.testing.assert_array_equal(collapse(distance_labels(mask), [1, 2]), mask)


def test_bad_parameters_raise():
    with pytest.raises(UserError, match="--thresholds"):
        multi_size_labels(np.zeros((3, 3, 3)), thresholds=(1000, 100))
    with pytest.raises(UserError, match="--distance2"):
        distance_labels(np.zeros((3, 3, 3)), distance2=0)
    with pytest.raises(UserError, match="--connectivity"):
        multi_size_labels(np.zeros((3, 3, 3)), connectivity=8)


def raw(tmp_path):
    return tmp_path / "nnunet" / "nnUNet_raw"


@pytest.fixture
def converted(run_cli, tmp_path):
    src = write_mslesseg_tree(tmp_path / "src", {1: 2, 2: 1, 3: 1}, test_patients=(54,),
                              modalities=("FLAIR", "T1"))
    run_cli("convert", "mslesseg", src, "--dataset-id", 21, "--modalities", "FLAIR,T1")
    return raw(tmp_path) / "Dataset021_MSLesSeg"


def read(path):
    return np.asanyarray(nib.load(path).dataobj)


@pytest.mark.parametrize("kind, extra, labels, lesion", [
    ("msl", ["--connectivity", "26", "--thresholds", "5,30"],
     {"background": 0, "small": 1, "medium": 2, "large": 3}, [1, 2, 3]),
    ("dbl", ["--distance2", "3"], {"background": 0, "boundary": 1, "interior": 2}, [1, 2]),
])
def test_relabel_cli_derives_a_linked_dataset(run_cli, converted, tmp_path, kind, extra,
                                              labels, lesion):
    run_cli("relabel", kind, "--source", 21, "--dataset-id", 22, *extra, "--workers", 2)
    derived = raw(tmp_path) / f"Dataset022_MSLesSeg{kind.upper()}"
    info = json.loads((derived / "dataset.json").read_text())
    assert info["labels"] == labels and info["lesion_labels"] == lesion
    assert info["labelling"]["kind"] == kind and info["channel_names"] == {"0": "FLAIR", "1": "T1"}
    for sub in ("imagesTr", "imagesTs"):
        names = sorted(p.name for p in (converted / sub).iterdir())
        assert names == sorted(p.name for p in (derived / sub).iterdir())
        for name in names:  # linked, not duplicated
            assert os.path.samefile(converted / sub / name, derived / sub / name)
    pre = tmp_path / "nnunet" / "nnUNet_preprocessed"
    assert ((pre / "Dataset022_MSLesSeg" f"{kind.upper()}" / "splits_final.json").read_text()
            == (pre / "Dataset021_MSLesSeg" / "splits_final.json").read_text())
    assert (derived / "case_map.json").read_text() == (converted / "case_map.json").read_text()
    for sub in ("labelsTr", "labelsTs"):
        for path in (converted / sub).iterdir():
            source, new = read(path), read(derived / sub / path.name)
            assert nib.load(derived / sub / path.name).get_data_dtype() == np.uint8
            assert set(np.unique(new)) <= {0, *lesion} and new.max() > 1
            np.testing.assert_array_equal(collapse(new, lesion), source)
            if kind == "dbl":
                np.testing.assert_array_equal(new, distance_labels(source, 3.0))


def test_msl_classes_are_whole_scan_classes_at_a_patch_border(run_cli, converted, tmp_path):
    """A lesion cut by a patch border keeps the class of its whole-scan size."""
    label_path = converted / "labelsTr" / "MSLesSeg_P01_T1.nii.gz"
    img = nib.load(label_path)
    mask = np.zeros(img.shape, np.uint8)
    mask[2:22, 2:20, 2:6] = 1          # 1440 voxels: large over the whole scan
    nib.save(nib.Nifti1Image(mask, img.affine, img.header), label_path)
    run_cli("relabel", "msl", "--source", 21, "--dataset-id", 23)
    labels = read(raw(tmp_path) / "Dataset023_MSLesSegMSL" / "labelsTr" / label_path.name)
    patch = (slice(0, 12), slice(0, 4), slice(0, 4))  # a training patch holding 40 lesion voxels
    assert mask[patch].sum() == 40
    assert multi_size_labels(mask[patch]).max() == 1  # what per-patch labelling would give
    assert set(np.unique(labels[patch])) == {0, 3}


def test_relabel_errors(run_cli, converted, tmp_path):
    proc = run_cli("relabel", "msl", "--source", 99, "--dataset-id", 22, check=False)
    assert proc.returncode == 2 and "--source 99" in proc.stderr.strip().splitlines()[-1]
    proc = run_cli("relabel", "msl", "--source", 21, "--dataset-id", 22, "--thresholds", "9,3",
                   check=False)
    assert proc.returncode == 2 and "--thresholds" in proc.stderr.strip().splitlines()[-1]
    proc = run_cli("relabel", "dbl", "--source", 21, "--dataset-id", 21, check=False)
    assert proc.returncode == 2 and "--dataset-id 21" in proc.stderr.strip().splitlines()[-1]
    bad = converted / "labelsTr" / "MSLesSeg_P02_T1.nii.gz"
    img = nib.load(bad)
    nib.save(nib.Nifti1Image(np.full(img.shape, 2, np.uint8), img.affine, img.header), bad)
    proc = run_cli("relabel", "dbl", "--source", 21, "--dataset-id", 22, check=False)
    assert proc.returncode == 2 and "MSLesSeg_P02_T1.nii.gz" in proc.stderr.splitlines()[-1]
    assert [p.name for p in raw(tmp_path).iterdir()] == ["Dataset021_MSLesSeg"]
    assert not (tmp_path / "nnunet" / "nnUNet_preprocessed" / "Dataset022_MSLesSegDBL").exists()
