"""``mslesseg tune``: grid search of fusion/postprocessing parameters on CV predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import check_can_write
from mslesseg_nnunet.components import CONNECTIVITIES, LESION_CONNECTIVITY
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import finite_float
from mslesseg_nnunet.nnunet_env import apply_nnunet_environment
from mslesseg_nnunet.postprocessing.components import SIZE_UNITS
from mslesseg_nnunet.postprocessing.params import CV_DICE, RULES, PostprocessingParams, save_params
from mslesseg_nnunet.tuning.search import GRID_OPTIONS, OBJECTIVES

PROB_STEPS = [round(float(v), 2) for v in np.arange(0.5, 1.0001, 0.05)]
# Default grids per rule: MadSeg's grid search (competition report, their code); mean rule: a
# small grid around nnU-Net's own threshold 0.5 and size filters of a few voxels.
DEFAULT_GRIDS = {
    "madseg": {"threshold": [0.5], "min_size": [0.0], "mix": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.0],
               "prob_threshold": PROB_STEPS, "volume_threshold": [1000.0]},
    "mean": {"threshold": [0.3, 0.4, 0.5, 0.6], "min_size": [0.0, 3.0, 5.0, 10.0]},
}
DEFAULT_GRIDS["union"] = DEFAULT_GRIDS["staple"] = DEFAULT_GRIDS["mean"]
PROTOCOL_SIZE_UNITS = {"mslesseg": "voxels", "msseg2": "mm3"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tune", help="grid-search threshold / sizes / MadSeg parameters on CV predictions",
        description="Load the cross-validation predictions (fold_K/validation/*.npz, written by "
                    "nnUNetv2_train --npz) of the given models once, pair MSL/DBL/binary datasets "
                    "by case id, and score every parameter setting (mean per-case Dice for "
                    "mslesseg; for msseg2 the challenge's criteria by mean rank, or lesion F1). "
                    "MSL+DBL models are tuned with the MadSeg rule, anything else with the mean "
                    "rule, unless --rule says otherwise. --select-members also searches the "
                    "subset of models whose ensemble scores best.")
    p.add_argument("--models", nargs="+", type=Path, required=True, metavar="MODEL_DIR",
                   help="nnU-Net model folders DatasetX/TRAINER__PLANS__CONFIG")
    p.add_argument("--folds", nargs="+", type=int, default=None,
                   help="folds to use (default: every fold_K with a validation folder)")
    p.add_argument("--protocol", choices=sorted(OBJECTIVES), required=True,
                   help="mslesseg: maximise mean Dice; msseg2: see --objective")
    p.add_argument("--objective", choices=sorted({o for v in OBJECTIVES.values() for o in v}),
                   default=None,
                   help="msseg2: rank (default; lesion F1 and Dice on patients with lesions, nFP "
                        "and VFP on lesion-free ones, each ranked over the settings, mean rank "
                        "wins) or f1 (mean lesion F1 only); mslesseg: dice")
    p.add_argument("--rule", choices=RULES, default=None,
                   help="fusion rule to tune (default: madseg for MSL+DBL models, else mean)")
    p.add_argument("--weights", choices=(CV_DICE,), default=None,
                   help="cv-dice: weight each model by its mean CV Dice (default: equal weights)")
    p.add_argument("--select-members", action="store_true",
                   help="also choose the subset of --models whose ensemble scores best")
    p.add_argument("--exhaustive-up-to", type=int, default=6, metavar="N",
                   help="--select-members tries every subset of up to N models, greedy forward "
                        "selection beyond (default 6)")
    p.add_argument("-o", "--output", type=Path, required=True, help="tuned.json to write")
    p.add_argument("--table", type=Path, default=None,
                   help="CSV of every setting and its scores (default: OUTPUT with .csv)")
    for field, option in GRID_OPTIONS.items():
        p.add_argument(option, nargs="+", type=finite_float, default=None, dest=field,
                       help=f"values of {field} to try (default: see README)")
    p.add_argument("--size-unit", choices=SIZE_UNITS, default=None,
                   help="unit of min sizes and volume thresholds (default: voxels for mslesseg, "
                        "mm3 for msseg2)")
    p.add_argument("--connectivity", type=int, choices=CONNECTIVITIES, default=None,
                   help=f"component connectivity (default {LESION_CONNECTIVITY}; the MSSEG-2 "
                        "nnU-Net team's filter: 26)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=run)


def grid_from_args(args, rule: str) -> dict[str, list[float]]:
    """The grid: options given on the command line, defaults for the rest."""
    return {field: getattr(args, field) or values for field, values in DEFAULT_GRIDS[rule].items()}


def base_params(args) -> PostprocessingParams:
    """The fixed parameters of the search: size unit and connectivity (protocol defaults)."""
    return PostprocessingParams(size_unit=args.size_unit or PROTOCOL_SIZE_UNITS[args.protocol],
                                connectivity=args.connectivity or LESION_CONNECTIVITY)


def objective_for(protocol: str, name: str | None):
    """The protocol's objective named ``name`` (default: the protocol's first)."""
    choices = OBJECTIVES[protocol]
    if name is None:
        return next(iter(choices.values()))
    if name not in choices:
        raise UserError(f"--objective: {protocol} offers {', '.join(choices)}, got {name!r}")
    return choices[name]


def run(args) -> int:
    from mslesseg_nnunet.tuning.tune import tune

    apply_nnunet_environment()
    table_path = args.table or args.output.with_suffix(".csv")
    for path in (args.output, table_path):
        check_can_write(path, args.overwrite)
    objective = objective_for(args.protocol, args.objective)
    # The rule may be known only once the models are open: crop for the lowest threshold of any grid.
    min_threshold = min(args.threshold or [min(g["threshold"]) for g in DEFAULT_GRIDS.values()])
    result = tune(args.models, args.folds, base_params(args), args.rule, lambda rule: grid_from_args(args, rule),
                  objective, min_threshold, table_path, args.weights, args.select_members,
                  args.exhaustive_up_to)
    save_params(args.output, result.params, score=result.score, metric=objective.metric,
                protocol=args.protocol, **result.extra)
    print(f"best {objective.metric} {result.score:.4f} with {result.params.to_dict()}"
          f"{result.note}; wrote {args.output}")
    return 0
