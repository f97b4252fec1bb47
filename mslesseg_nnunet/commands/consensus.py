"""``mslesseg consensus``: STAPLE consensus of prediction folders and each one's Dice against it."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import finite_float

CSV_NAME = "consensus_dice.csv"
SUMMARY_NAME = "consensus_summary.json"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "consensus", help="STAPLE consensus of several prediction folders (and the reference)",
        description="For every case, merge the masks of all PRED_DIRs (and of --gt) with "
                    "STAPLE (SimpleITK), threshold its probability and write OUT/{case}.nii.gz "
                    f"with the header of the reference (else of the first PRED_DIR); OUT/{CSV_NAME} "
                    "gives each input's Dice against the consensus (the MSLesSeg data "
                    f"descriptor's C1/C2 analysis), OUT/{SUMMARY_NAME} its statistics per input. "
                    "Folders may be in any layout `mslesseg evaluate` reads.")
    p.add_argument("pred_dirs", type=Path, nargs="+", metavar="PRED_DIR",
                   help="folders of predicted masks")
    p.add_argument("--gt", type=Path, default=None,
                   help="folder of reference masks, included in the consensus and scored too")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="output folder")
    p.add_argument("--threshold", type=finite_float, default=0.5,
                   help="consensus = STAPLE probability strictly above this (default 0.5)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.atomic import atomic_dir, check_no_overlap
    from mslesseg_nnunet.parallel import parallel_map
    from mslesseg_nnunet.evaluation.consensus import (CSV_COLUMNS, consensus_case,
                                                      consensus_inputs, consensus_summary,
                                                      consensus_tasks)
    from mslesseg_nnunet.atomic import write_json
    from mslesseg_nnunet.evaluation.summary import write_csv
    from mslesseg_nnunet.postprocessing.threshold import check_probability

    threshold = check_probability(args.threshold, "--threshold")
    if args.workers < 1:
        raise UserError("--workers: must be >= 1")
    check_no_overlap(args.output, [*args.pred_dirs, args.gt])
    inputs = consensus_inputs(args.pred_dirs, args.gt)
    with atomic_dir(args.output, args.overwrite) as tmp:
        tasks = consensus_tasks(inputs, tmp, threshold)
        per_case = parallel_map(consensus_case, tasks, args.workers, "consensus")
        rows = [row for case_rows in per_case for row in case_rows]
        write_csv(tmp / CSV_NAME, rows, list(CSV_COLUMNS))
        summary = consensus_summary(rows, inputs, threshold)
        write_json(tmp / SUMMARY_NAME, summary)
    means = ", ".join(f"{label} {s['dice']['mean']:.4f}" for label, s in summary["inputs"].items()
                      if s["dice"]["mean"] is not None)
    print(f"{len(tasks)} cases, mean Dice against the consensus: {means} -> {args.output}")
    return 0
