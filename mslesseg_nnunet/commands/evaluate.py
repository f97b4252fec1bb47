"""``mslesseg evaluate``: score a prediction folder with the MSLesSeg or MSSEG-2 rules."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.atomic import check_can_write
from mslesseg_nnunet.components import LESION_CONNECTIVITY, check_connectivity
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import finite_float
from mslesseg_nnunet.vocabulary import PROTOCOLS

ANIMA_OPTIONS = (("min_volume", "min_volume_mm3", 3.0), ("alpha", "alpha", 0.1),
                 ("beta", "beta", 0.7), ("gamma", "gamma", 0.65))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score predictions against references (MSLesSeg or MSSEG-2 rules)",
        description="Score every reference case in GT against the prediction with the same case "
                    "id in PRED. Folders may be nnU-Net style ({case}.nii.gz), MSLesSeg "
                    "(P54/P54_MASK.nii.gz, P1/T1/P1_T1_MASK.nii.gz) or MSSEG-2 patient folders "
                    "(013/ground_truth.nii.gz; a prediction folder holds one mask per patient).")
    p.add_argument("pred", type=Path, metavar="PRED", help="folder of predicted masks")
    p.add_argument("gt", type=Path, metavar="GT", help="folder of reference masks")
    p.add_argument("--protocol", choices=PROTOCOLS, required=True,
                   help="mslesseg: Dice, TPR, PPV, LTPR, LFPR, AVD, ASSD, HD95; "
                        "msseg2: animaSegPerfAnalyzer's Dice and lesion detection F1; both "
                        "also IoU, specificity, AVD %%, distances in voxels, FDR and detection "
                        "by lesion size (docs/evaluation.md)")
    p.add_argument("-o", "--output", type=Path, required=True, help="per-case metrics CSV")
    p.add_argument("--summary", type=Path, default=None,
                   help="summary JSON (mean, std, median, count, q25, q75 per metric, and "
                        "the conventions used)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--missing-as-empty", action="store_true",
                   help="score reference cases without a prediction as empty predictions")
    p.add_argument("--connectivity", type=int, default=None,
                   help=f"mslesseg only: lesion connectivity 6, 18 or 26 (default "
                        f"{LESION_CONNECTIVITY}; msseg2: always 6, Anima's)")
    p.add_argument("--min-volume", type=finite_float, default=None,
                   help="msseg2 only: lesions must be larger than this, in mm3 (default 3.0)")
    p.add_argument("--alpha", type=finite_float, default=None, help="msseg2 only (default 0.1)")
    p.add_argument("--beta", type=finite_float, default=None, help="msseg2 only (default 0.7)")
    p.add_argument("--gamma", type=finite_float, default=None, help="msseg2 only (default 0.65)")
    p.add_argument("--size-bins", choices=["msl", "cib"], default="msl",
                   help="lesion size classes of the per-size detection columns: msl (default; "
                        "small < 100 <= medium < 1000 <= large voxels, as `relabel msl`) or "
                        "cib (seed 003: medium < 50 <= large voxels)")
    p.add_argument("--empty-dice", choices=["nan", "one-zero"], default="nan",
                   help="Dice and IoU on an empty reference: nan (default, undefined) or "
                        "one-zero (1 when both masks are empty, 0 when only the reference is)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def protocol_options(args) -> dict:
    """The keyword options of the chosen protocol's score_case, validated."""
    anima_given = [flag for flag, _, _ in ANIMA_OPTIONS if getattr(args, flag) is not None]
    scoring = {"size_bins": args.size_bins, "empty_dice": args.empty_dice}
    if args.protocol == "mslesseg":
        if anima_given:
            raise UserError(f"--{anima_given[0].replace('_', '-')}: only for --protocol msseg2")
        return {"connectivity": check_connectivity(args.connectivity or LESION_CONNECTIVITY), **scoring}
    if args.connectivity is not None:
        raise UserError("--connectivity: the msseg2 protocol always uses 6-connectivity (Anima)")
    options = dict(scoring)
    for flag, key, default in ANIMA_OPTIONS:
        value = getattr(args, flag)
        options[key] = default if value is None else value
        if flag == "min_volume" and options[key] < 0:
            raise UserError("--min-volume: must be >= 0")
        if flag != "min_volume" and not 0 < options[key] <= 1:
            raise UserError(f"--{flag}: must be in (0, 1]")
    return options


def run(args) -> int:
    from mslesseg_nnunet.evaluation.batch import columns, evaluate_folders, summary_document
    from mslesseg_nnunet.atomic import write_json
    from mslesseg_nnunet.evaluation.summary import write_csv

    options = protocol_options(args)
    if args.workers < 1:
        raise UserError("--workers: must be >= 1")
    for out in filter(None, (args.output, args.summary)):
        check_can_write(out, args.overwrite)
    if args.summary is not None and args.summary.resolve() == args.output.resolve():
        raise UserError("--summary: must differ from --output")
    rows = evaluate_folders(args.pred, args.gt, args.protocol, options, workers=args.workers,
                            missing_as_empty=args.missing_as_empty)
    summary = summary_document(rows, args.protocol, options)
    write_csv(args.output, rows, columns(args.protocol, options))
    if args.summary is not None:
        write_json(args.summary, summary)
    print(_headline(summary, args.output))
    return 0


def _headline(summary: dict, output: Path) -> str:
    stats = summary["metrics"]
    parts = [f"{name} {s['mean']:.4f}" for name, s in stats.items()
             if s["mean"] is not None and name in ("dice", "f1", "ltpr", "lfpr", "ppvl", "sensl")]
    return f"{summary['n_cases']} cases, mean " + ", ".join(parts) + f" -> {output}"
