"""``mslesseg report``: a self-contained HTML QC report of predictions against references."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.components import LESION_CONNECTIVITY, check_connectivity
from mslesseg_nnunet.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="self-contained HTML QC report (metrics, plots, slices of the errors)",
        description="Score PRED against GT with the MSLesSeg metrics and write OUT/index.html "
                    "(summary, sortable per-case table, box plots, Dice against lesion load, and "
                    "per case three slices through the largest error over the FLAIR), plus "
                    "OUT/metrics.csv and OUT/summary.json. The page loads nothing from the network.")
    p.add_argument("--images", type=Path, required=True,
                   help="folder with the FLAIR images (MSLesSeg, MSSEG-2 or nnU-Net layout)")
    p.add_argument("--pred", type=Path, required=True, help="folder of predicted masks")
    p.add_argument("--gt", type=Path, required=True, help="folder of reference masks")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder to create")
    p.add_argument("--connectivity", type=int, default=LESION_CONNECTIVITY,
                   help=f"lesion connectivity (default {LESION_CONNECTIVITY})")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--missing-as-empty", action="store_true",
                   help="score reference cases without a prediction as empty predictions")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.evaluation.report.build import build_report

    if args.workers < 1:
        raise UserError("--workers: must be >= 1")
    summary = build_report(args.images, args.pred, args.gt, args.output,
                           check_connectivity(args.connectivity), args.workers,
                           args.missing_as_empty, args.overwrite)
    print(f"{summary['n_cases']} cases -> {args.output / 'index.html'}")
    return 0
