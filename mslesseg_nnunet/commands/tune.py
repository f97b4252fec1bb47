"""``mslesseg tune``: grid search of fusion/postprocessing parameters on CV predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import check_can_write
from mslesseg_nnunet.components import CONNECTIVITIES
from mslesseg_nnunet.nnunet_env import apply_nnunet_environment
from mslesseg_nnunet.postprocessing.components import SIZE_UNITS
from mslesseg_nnunet.postprocessing.params import PostprocessingParams, save_params
from mslesseg_nnunet.postprocessing.search import (SCORES, best_setting, grid_settings,
                                                   score_settings, write_table)

PROB_STEPS = [round(float(v), 2) for v in np.arange(0.5, 1.0001, 0.05)]
# Defaults per rule and protocol (METHODS.md: MadSeg's grid; MSSEG-2 nnU-Net recipe).
DEFAULT_GRIDS = {
    "madseg": {"threshold": [0.5], "min_size": [0.0], "mix": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.0],
               "prob_threshold": PROB_STEPS, "volume_threshold": [1000.0]},
    "mean": {"threshold": [0.3, 0.4, 0.5, 0.6], "min_size": [0.0, 3.0, 5.0, 10.0]},
}
PROTOCOL_DEFAULTS = {"mslesseg": {"size_unit": "voxels", "connectivity": 6},
                     "msseg2": {"size_unit": "mm3", "connectivity": 26}}
GRID_OPTIONS = {"threshold": "--thresholds", "min_size": "--min-sizes", "mix": "--mixes",
                "prob_threshold": "--prob-thresholds", "volume_threshold": "--volume-thresholds"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tune", help="grid-search threshold / sizes / MadSeg parameters on CV predictions",
        description="Load the cross-validation predictions (fold_K/validation/*.npz, written by "
                    "nnUNetv2_train --npz) of the given models once, pair MSL/DBL/binary datasets "
                    "by case id, and score every parameter setting (mean per-case Dice for "
                    "mslesseg, lesion F1 for msseg2). MSL+DBL models are tuned with the MadSeg "
                    "rule, anything else with the mean rule.")
    p.add_argument("--models", nargs="+", type=Path, required=True, metavar="MODEL_DIR",
                   help="nnU-Net model folders DatasetX/TRAINER__PLANS__CONFIG")
    p.add_argument("--folds", nargs="+", type=int, default=None,
                   help="folds to use (default: every fold_K with a validation folder)")
    p.add_argument("--protocol", choices=sorted(SCORES), required=True,
                   help="mslesseg: maximise mean Dice; msseg2: maximise mean lesion F1")
    p.add_argument("-o", "--output", type=Path, required=True, help="tuned.json to write")
    p.add_argument("--table", type=Path, default=None,
                   help="CSV of every setting and its scores (default: OUTPUT with .csv)")
    for field, option in GRID_OPTIONS.items():
        p.add_argument(option, nargs="+", type=float, default=None, dest=field,
                       help=f"values of {field} to try (default: see README)")
    p.add_argument("--size-unit", choices=SIZE_UNITS, default=None,
                   help="unit of min sizes and volume thresholds (default: voxels for mslesseg, "
                        "mm3 for msseg2)")
    p.add_argument("--connectivity", type=int, choices=CONNECTIVITIES, default=None,
                   help="component connectivity (default: 6 for mslesseg, 26 for msseg2)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=run)


def grid_from_args(args, rule: str) -> dict[str, list[float]]:
    """The grid: options given on the command line, defaults for the rest."""
    return {field: getattr(args, field) or values for field, values in DEFAULT_GRIDS[rule].items()}


def run(args) -> int:
    from mslesseg_nnunet.ensembles.validation import load_validation

    apply_nnunet_environment()
    table_path = args.table or args.output.with_suffix(".csv")
    for path in (args.output, table_path):
        check_can_write(path, args.overwrite)
    # The rule is known only once the models are open: crop for the lowest threshold of any grid.
    min_threshold = min(args.threshold or [min(g["threshold"]) for g in DEFAULT_GRIDS.values()])
    models, rule, cases = load_validation(args.models, args.folds, min_threshold)
    defaults = PROTOCOL_DEFAULTS[args.protocol]
    base = PostprocessingParams(rule=rule, size_unit=args.size_unit or defaults["size_unit"],
                                connectivity=args.connectivity or defaults["connectivity"])
    settings = grid_settings(base, grid_from_args(args, rule))
    metric, score = SCORES[args.protocol]
    table = score_settings(cases, settings, score)
    best, value = best_setting(settings, table)
    write_table(table_path, settings, table, [c.case for c in cases], metric)
    save_params(args.output, settings[best], score=value, metric=metric, protocol=args.protocol,
                n_cases=len(cases), n_settings=len(settings), table=str(table_path),
                models=[m.describe() for m in models])
    print(f"best mean {metric} {value:.4f} with {settings[best].to_dict()}; wrote {args.output}")
    return 0
