"""``mslesseg ensemble``: fuse existing probability folders into an ensemble folder."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.numbers import check_finite
from mslesseg_nnunet.postprocessing.params import CV_DICE, RULES, PostprocessingParams, load_params

RULE_HELP = ("mean: weighted mean of all members; madseg: MSL/DBL fusion; union: union of the "
             "members' masks; staple: STAPLE consensus of the members' masks (default: the "
             "rule in --params, else mean)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ensemble", help="fuse nnU-Net probability folders (or ensemble folders) into one",
        description="Fuse folders of per-case probabilities (nnU-Net outputs written with "
                    "--save_probabilities, CV validation folders written with --npz, or other "
                    "ensemble folders) case by case into OUT: {case}.npz (fused lesion "
                    "probability), {case}.nii.gz (mask) and ensemble.json.")
    p.add_argument("-i", "--input", nargs="+", type=Path, required=True, metavar="FOLDER",
                   help="probability folders (one per ensemble member)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="ensemble folder to create")
    p.add_argument("--rule", choices=RULES, default=None, help=RULE_HELP)
    p.add_argument("--weights", nargs="+", default=None, metavar="W",
                   help="one weight per input folder, or cv-dice: each member's model's mean "
                        "CV Dice (from its fold_K/validation outputs) (default: all 1)")
    p.add_argument("--params", type=Path, default=None,
                   help="tuned.json from `mslesseg tune` (threshold, sizes, MadSeg parameters; "
                        "when it names chosen members, only those inputs are fused, with its weights)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads reading members in parallel (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)


def parse_weights(values: list[str] | None) -> list[float] | str | None:
    """``--weights``: numbers, or the single word cv-dice."""
    if values is None:
        return None
    if values == [CV_DICE]:
        return CV_DICE
    return [check_finite(v, "--weights") for v in values]


def resolve_params(params_path: Path | None, rule: str | None) -> PostprocessingParams:
    """Parameters from ``--params`` (or defaults), with ``--rule`` taking precedence."""
    params = load_params(params_path) if params_path else PostprocessingParams()
    return params.replace(rule=rule) if rule else params


def run(args) -> int:
    from mslesseg_nnunet.ensembles.folder import ensemble_folders

    params = resolve_params(args.params, args.rule)
    ensemble_folders(args.input, args.output, params, parse_weights(args.weights), args.overwrite,
                     max(1, args.threads), args.params)
    print(f"wrote {args.output}")
    return 0
