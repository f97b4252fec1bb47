"""``mslesseg matrix``: the cross-dataset matrix (training set x test set, Dice and IoU)."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.atomic import check_can_write


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "matrix", help="cross-dataset matrix of mean Dice and IoU (CSV and HTML)",
        description="Collect per-case metrics CSVs of `mslesseg evaluate` into a training set x "
                    "test set matrix of mean Dice and IoU (seed 002's Table 2): OUT/matrix.csv "
                    "(one row per cell) and OUT/index.html; print both matrices.")
    p.add_argument("--cell", nargs=3, action="append", required=True,
                   metavar=("TRAINING_SET", "TEST_SET", "METRICS_CSV"),
                   help="one cell (repeat for every pair)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.evaluation.matrix import cell, format_matrix, write_matrix

    check_can_write(args.output, args.overwrite)
    cells = [cell(row, col, Path(csv)) for row, col, csv in args.cell]
    write_matrix(args.output, cells, args.overwrite)
    print(format_matrix(cells))
    print(f"-> {args.output / 'matrix.csv'}, {args.output / 'index.html'}")
    return 0
