"""Lesion report and longitudinal comparison on hand-built masks, and the CLI."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from eval_helpers import affine_for, write_mask
from mslesseg_nnunet.evaluation.lesion_report import lesion_changes, lesion_table

SPACING = (1.0, 2.0, 0.5)


def hand_mask():
    m = np.zeros((20, 12, 30), bool)
    m[2:4, 2:4, 2:4] = True                # 8 voxels, small
    m[10:15, 2:7, 2:6] = True              # 100 voxels, medium (>= 100)
    m[15, 7, 6] = True                     # corner neighbour of the medium lesion
    return m


def test_lesion_table_values():
    m = hand_mask()
    aff = affine_for(SPACING, origin=(90.0, -126.0, -72.0))
    flair = np.arange(m.size, dtype=np.float32).reshape(m.shape)
    rows = lesion_table(m, aff, connectivity=6, flair=flair)
    assert [r["voxels"] for r in rows] == [100, 8, 1]          # ids by decreasing size
    assert [r["size_class"] for r in rows] == ["medium", "small", "small"]
    med = rows[0]
    assert med["volume_mm3"] == 100 * 1.0 * 2.0 * 0.5
    centre = np.array([12.0, 4.0, 3.5])
    assert [med["centroid_x_mm"], med["centroid_y_mm"], med["centroid_z_mm"]] == \
        pytest.approx(list(aff[:3, :3] @ centre + aff[:3, 3]))
    assert (med["bbox_min_i"], med["bbox_max_i"], med["bbox_min_k"], med["bbox_max_k"]) == \
        (10, 14, 2, 5)
    assert med["mean_flair"] == pytest.approx(flair[10:15, 2:7, 2:6].mean())
    assert len(lesion_table(m, aff, connectivity=26)) == 2       # corner voxel joins


def test_lesion_changes_statuses():
    base = np.zeros((30, 30, 30), bool)
    follow = np.zeros_like(base)
    base[1:4, 1:4, 1:4] = True                 # 27 -> 64 voxels: enlarging
    follow[1:5, 1:5, 1:5] = True
    base[10:14, 10:14, 10:14] = True           # 64 -> 27: shrinking
    follow[10:13, 10:13, 10:13] = True
    base[20:23, 1:4, 1:4] = True               # 27 -> 30: stable (+11%)
    follow[20:23, 1:4, 1:4] = True
    follow[23, 1:2, 1:4] = True
    base[1:3, 20:22, 20:22] = True             # disappears
    follow[25:28, 25:28, 25:28] = True         # new
    base[20:22, 20:22, 1:3] = True             # two baseline lesions merged: one group
    base[20:22, 20:22, 4:6] = True
    follow[20:22, 20:22, 1:6] = True           # 16 -> 20 voxels: stable (+25% is the bound)
    rows = lesion_changes(base, follow, np.eye(4), connectivity=6, min_change=0.3)
    statuses = [r["status"] for r in rows]
    assert sorted(statuses) == sorted(["enlarging", "shrinking", "stable", "stable",
                                       "disappeared", "new"])
    merged = [r for r in rows if r["baseline_lesions"] == 2]
    assert len(merged) == 1 and merged[0]["followup_lesions"] == 1
    assert merged[0]["relative_change"] == pytest.approx(0.25)
    new = next(r for r in rows if r["status"] == "new")
    assert new["followup_volume_mm3"] == 27 and (new["centroid_x_mm"], new["centroid_y_mm"]) == (26, 26)
    assert statuses[0] == "new" and statuses[-1] == "disappeared"
    with_low_bar = lesion_changes(base, follow, np.eye(4), connectivity=6, min_change=0.2)
    assert [r["status"] for r in with_low_bar].count("enlarging") == 2


def test_cli_lesion_report_and_changes(tmp_path, run_cli):
    m = hand_mask()
    mask = write_mask(tmp_path / "P1_T1_MASK.nii.gz", m, SPACING, dtype=np.float32)
    flair = write_mask(tmp_path / "P1_T1_FLAIR.nii.gz", m * 500.0 + 10, SPACING, dtype=np.float32)
    run_cli("lesions", mask, "--flair", flair, "-o", tmp_path / "l.csv",
            "--summary", tmp_path / "l.json")
    with open(tmp_path / "l.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["voxels"]) for r in rows] == [100, 8, 1]
    assert float(rows[0]["mean_flair"]) == 510.0
    summary = json.loads((tmp_path / "l.json").read_text())
    assert summary["lesions"] == 3 and summary["total_volume_mm3"] == 109.0
    follow = m.copy()
    follow[2:4, 2:4, 2:4] = False
    follow2 = write_mask(tmp_path / "P1_T2_MASK.nii.gz", follow, SPACING)
    proc = run_cli("lesions", "--baseline", mask, "--followup", follow2, "-o", tmp_path / "c.csv")
    assert "1 disappeared" in proc.stdout and "2 stable" in proc.stdout
    bad = write_mask(tmp_path / "other.nii.gz", follow[:-1], SPACING)
    proc = run_cli("lesions", "--baseline", mask, "--followup", bad, "-o", tmp_path / "d.csv",
                   check=False)
    assert proc.returncode == 2 and "geometry mismatch" in proc.stderr
    assert not (tmp_path / "d.csv").exists()
