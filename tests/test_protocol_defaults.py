"""One lesion connectivity in every command (6: MSLesSeg's own lesion counts, MadSeg, Anima)."""
from __future__ import annotations

import numpy as np
import pytest

from mslesseg_nnunet.cli import build_parser
from mslesseg_nnunet.commands.evaluate import protocol_options
from mslesseg_nnunet.commands.tune import base_params
from mslesseg_nnunet.evaluation.mslesseg_metrics import score_case


@pytest.fixture(scope="module")
def parse():
    return build_parser().parse_args


def test_evaluate_counts_corner_neighbours_as_two_lesions(parse):
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # touch at a corner only: 2 lesions at 6, 1 at 26
    options = protocol_options(parse(["evaluate", "P", "G", "--protocol", "mslesseg", "-o", "m.csv"]))
    assert options["connectivity"] == 6
    assert score_case(mask, mask, (1.0, 1.0, 1.0), **options)["n_ref_lesions"] == 2


@pytest.mark.parametrize("argv", [["lesions", "M", "-o", "l.csv"], ["report", "--images", "I", "--pred", "P",
                                  "--gt", "G", "-o", "R"], ["relabel", "msl", "--source", "1", "--dataset-id", "2"]])
def test_lesion_commands_default_to_6(parse, argv):
    assert parse(argv).connectivity == 6


@pytest.mark.parametrize("protocol,unit", [("mslesseg", "voxels"), ("msseg2", "mm3")])
def test_tune_defaults(parse, protocol, unit):
    args = parse(["tune", "--models", "M", "--protocol", protocol, "-o", "t.json"])
    params = base_params(args)
    assert (params.connectivity, params.size_unit) == (6, unit)
