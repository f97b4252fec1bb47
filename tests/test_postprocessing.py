"""Pure postprocessing functions: thresholds, component filters, the MadSeg rule, parameters."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.evaluation.msseg2_metrics import min_lesion_voxels
from mslesseg_nnunet.postprocessing.components import (filter_by_max_probability, keep_larger_than,
                                                       size_in_voxels)
from mslesseg_nnunet.postprocessing.madseg import madseg_mask
from mslesseg_nnunet.postprocessing.params import PostprocessingParams, load_params, save_params
from mslesseg_nnunet.postprocessing.rules import segment
from mslesseg_nnunet.tuning.search import GRID_FIELDS, grid_settings
from mslesseg_nnunet.postprocessing.threshold import binarize


def test_binarize_is_strict_like_nnunet_argmax():
    p = np.array([0.2, 0.5, 0.50001, 1.0], dtype=np.float32)
    assert binarize(p, 0.5).tolist() == [False, False, True, True]


@pytest.mark.parametrize("connectivity,kept", [(6, False), (18, False), (26, True)])
def test_size_filter_corner_neighbours(connectivity, kept):
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # touch at a corner only
    out = keep_larger_than(mask, 1, connectivity=connectivity)
    assert out.sum() == (2 if kept else 0)


@pytest.mark.parametrize("connectivity,kept", [(6, False), (18, True), (26, True)])
def test_size_filter_edge_neighbours(connectivity, kept):
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 1, 1] = mask[2, 2, 1] = True  # touch along an edge
    out = keep_larger_than(mask, 1, connectivity=connectivity)
    assert out.sum() == (2 if kept else 0)


def test_size_filter_mm3_on_anisotropic_spacing():
    mask = np.zeros((6, 6, 6), bool)
    mask[1, 1, 1:3] = True   # 2 voxels of 1 x 1 x 3 mm = 6 mm3
    mask[4, 4, 4] = True     # 1 voxel = 3 mm3
    spacing = (1.0, 1.0, 3.0)
    assert size_in_voxels(6, "mm3", spacing) == 2
    above_3 = keep_larger_than(mask, 3, "mm3", spacing)
    assert above_3.sum() == 2 and above_3[1, 1, 1]
    assert keep_larger_than(mask, 2.9, "mm3", spacing).sum() == 3
    assert keep_larger_than(mask, 6, "mm3", spacing).sum() == 0
    assert keep_larger_than(mask, 1, "voxels", spacing).sum() == 2
    assert keep_larger_than(mask, 0, "mm3", spacing).sum() == 3


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 3.0), (1.0, 1.0, 1.5), (0.8, 0.8, 0.8)])
def test_size_filter_keeps_strictly_larger_like_anima(spacing):
    """One rule for every size filter: strictly larger, as Anima's minimum lesion volume
    (MSSEG-2: lesions of more than 3 mm3, floor(3 / v) + 1 voxels) and the MSSEG-2 nnU-Net
    team's "components > 4 mm3"."""
    n = min_lesion_voxels(spacing, 3.0)
    mask = np.zeros((2 * n + 2, 3, 3), bool)
    mask[:n - 1, 1, 1] = True           # one voxel short of Anima's smallest lesion
    mask[n + 1:2 * n + 1, 1, 1] = True  # Anima's smallest lesion
    kept = keep_larger_than(mask, 3.0, "mm3", spacing)
    assert not kept[:n].any() and kept.sum() == n
    assert keep_larger_than(mask, n, "voxels").sum() == 0  # exactly n voxels: not larger


def test_max_probability_filter_spares_large_components():
    prob = np.zeros((10, 10, 10), np.float32)
    prob[1, 1, 1] = 0.8                 # small, confident
    prob[5, 5, 5] = 0.6                 # small, unsure
    prob[7:10, 7:10, 7:10] = 0.55       # large (27 voxels), unsure
    mask = prob > 0.5
    out = filter_by_max_probability(mask, prob, 0.7, max_size=10)
    assert out[1, 1, 1] and not out[5, 5, 5] and out[7:10, 7:10, 7:10].all()
    assert out.sum() == 28


def madseg_case():
    """Hand-built MSL/DBL probabilities with one component of each MadSeg situation."""
    shape = (20, 20, 20)
    msl, dbl = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    msl[1, 1, 1], dbl[1, 1, 1] = 0.9, 0.7             # A small, fused max 0.8 -> kept
    msl[4, 4, 4], dbl[4, 4, 4] = 0.7, 0.5             # B small, fused 0.6 -> dropped
    dbl[8:12, 8:12, 8:12] = 0.9                       # C large DBL only (64 vox), fused 0.45 -> kept whole
    msl[14:18, 14:18, 1:5] = dbl[14:18, 14:18, 1:5] = 0.55   # D large fused, unsure -> kept
    dbl[1, 15, 15] = 0.95                             # E small DBL only, fused 0.475 -> dropped
    msl[15, 1, 15] = dbl[15, 1, 15] = 0.72            # F small, fused 0.72 >= 0.7 -> kept
    return msl, dbl


def test_madseg_rule_keeps_and_drops_the_right_components():
    msl, dbl = madseg_case()
    out = madseg_mask(msl, dbl, mix=0.5, threshold=0.5, volume_threshold=30, prob_threshold=0.7)
    expected = np.zeros_like(out)
    expected[1, 1, 1] = True
    expected[8:12, 8:12, 8:12] = True
    expected[14:18, 14:18, 1:5] = True
    expected[15, 1, 15] = True
    np.testing.assert_array_equal(out, expected)


def test_madseg_mix_one_ignores_dbl_except_large_components():
    msl, dbl = madseg_case()
    out = madseg_mask(msl, dbl, mix=1.0, threshold=0.5, volume_threshold=30, prob_threshold=0.7)
    assert out[4, 4, 4] and out[8:12, 8:12, 8:12].all() and not out[1, 15, 15]


def test_segment_madseg_volume_threshold_in_mm3():
    msl, dbl = madseg_case()
    params = PostprocessingParams(rule="madseg", volume_threshold=60, size_unit="mm3",
                                  prob_threshold=0.7)
    # 2 mm3 voxels: 60 mm3 = 30 voxels, the same as the voxel test above.
    _, out = segment({"msl": msl, "dbl": dbl}, params, spacing=(1.0, 1.0, 2.0))
    direct = madseg_mask(msl, dbl, volume_threshold=30, prob_threshold=0.7)
    np.testing.assert_array_equal(out, direct)


def test_segment_mean_rule_threshold_then_min_size():
    p = np.zeros((8, 8, 8), np.float32)
    p[1, 1, 1] = 0.9
    p[4:6, 4:6, 4:6] = 0.6
    params = PostprocessingParams(threshold=0.5, min_size=2)
    _, out = segment({"all": p}, params, spacing=(1, 1, 1))
    assert out.sum() == 8 and not out[1, 1, 1]


def test_params_json_roundtrip_and_errors(tmp_path):
    params = PostprocessingParams(rule="madseg", mix=0.8, prob_threshold=0.85)
    save_params(tmp_path / "tuned.json", params, score=0.7)
    assert load_params(tmp_path / "tuned.json") == params
    (tmp_path / "bad.json").write_text(json.dumps({"params": {"treshold": 0.5}}))
    with pytest.raises(UserError, match="bad.json: unknown parameter"):
        load_params(tmp_path / "bad.json")
    with pytest.raises(UserError, match="mix"):
        PostprocessingParams(mix=1.5)
    with pytest.raises(UserError, match="connectivity"):
        PostprocessingParams(connectivity=8)


@pytest.mark.parametrize("field", GRID_FIELDS)
def test_empty_grid_error_names_a_real_tune_option(field):
    import argparse

    from mslesseg_nnunet.commands.tune import register

    commands = argparse.ArgumentParser().add_subparsers()
    register(commands)
    flags = {flag for action in commands.choices["tune"]._actions for flag in action.option_strings}
    with pytest.raises(UserError) as err:
        grid_settings(PostprocessingParams(rule="madseg"), {field: []})
    assert str(err.value).split(":")[0] in flags
