"""``mslesseg lesions``: per-lesion report of a mask, or lesion changes between two timepoints."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.atomic import check_can_write
from mslesseg_nnunet.components import LESION_CONNECTIVITY, check_connectivity
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import finite_float


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lesions", help="lesion report of a mask, or new/enlarging/shrinking/disappeared lesions",
        description="With MASK: one CSV row per lesion (id, voxels, volume, centroid in mm, "
                    "bounding box, multi-size class, mean FLAIR with --flair). With --baseline "
                    "and --followup (two co-registered masks): one row per group of "
                    "overlapping lesions with its status.")
    p.add_argument("mask", type=Path, nargs="?", metavar="MASK", help="binary lesion mask")
    p.add_argument("--flair", type=Path, default=None,
                   help="FLAIR image on MASK's grid, for each lesion's mean intensity")
    p.add_argument("--baseline", type=Path, default=None, help="mask of the first timepoint")
    p.add_argument("--followup", type=Path, default=None, help="mask of the later timepoint")
    p.add_argument("-o", "--output", type=Path, required=True, help="output CSV")
    p.add_argument("--summary", type=Path, default=None,
                   help="JSON with the per-scan summary (count, total volume) or status counts")
    p.add_argument("--connectivity", type=int, default=LESION_CONNECTIVITY,
                   help=f"lesion connectivity 6, 18 or 26 (default {LESION_CONNECTIVITY}, as "
                        "MSLesSeg's lesion counts)")
    p.add_argument("--thresholds", default=None,
                   help="size class bounds in voxels (default 100,1000: small/medium/large)")
    p.add_argument("--min-change", type=finite_float, default=0.25,
                   help="relative volume change that makes a lesion enlarging or shrinking "
                        "(default 0.25 = 25%%)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args) -> int:
    connectivity = check_connectivity(args.connectivity)
    longitudinal = args.baseline is not None or args.followup is not None
    if longitudinal and (args.mask is not None or args.flair is not None):
        raise UserError("MASK/--flair: give either MASK or --baseline and --followup, not both")
    if longitudinal and (args.baseline is None or args.followup is None):
        raise UserError("--baseline/--followup: both are needed")
    if not longitudinal and args.mask is None:
        raise UserError("MASK: give a mask, or --baseline and --followup")
    for out in filter(None, (args.output, args.summary)):
        check_can_write(out, args.overwrite)
    if longitudinal:
        return _run_changes(args, connectivity)
    return _run_report(args, connectivity)


def _parse_thresholds(text: str | None) -> tuple[int, ...]:
    from mslesseg_nnunet.labelling import DEFAULT_THRESHOLDS

    if text is None:
        return DEFAULT_THRESHOLDS
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise UserError(f"--thresholds: expected comma-separated voxel counts, got {text!r}") from None


def _run_report(args, connectivity: int) -> int:
    from mslesseg_nnunet.evaluation.lesion_report import LESION_COLUMNS, lesion_table, scan_summary
    from mslesseg_nnunet.evaluation.masks import check_same_grid, read_mask
    from mslesseg_nnunet.atomic import write_json
    from mslesseg_nnunet.evaluation.summary import write_csv
    from mslesseg_nnunet.nifti import read_volume

    mask, header = read_mask(args.mask)
    flair = None
    if args.flair is not None:
        vol = read_volume(args.flair)
        check_same_grid(args.flair, vol.header, args.mask, header)
        flair = vol.data
    rows = lesion_table(mask, header.get_best_affine(), connectivity,
                        _parse_thresholds(args.thresholds), flair)
    columns = [c for c in LESION_COLUMNS if flair is not None or c != "mean_flair"]
    summary = scan_summary(rows)
    write_csv(args.output, rows, columns)
    if args.summary is not None:
        write_json(args.summary, {"mask": str(args.mask), "connectivity": connectivity, **summary})
    print(f"{summary['lesions']} lesions, {summary['total_volume_mm3']:.1f} mm3 -> {args.output}")
    return 0


def _run_changes(args, connectivity: int) -> int:
    from mslesseg_nnunet.evaluation.lesion_report import (CHANGE_COLUMNS, change_summary,
                                                          lesion_changes)
    from mslesseg_nnunet.evaluation.masks import check_same_grid, read_mask
    from mslesseg_nnunet.atomic import write_json
    from mslesseg_nnunet.evaluation.summary import write_csv

    if not args.min_change > 0:
        raise UserError("--min-change: must be > 0")
    base, base_header = read_mask(args.baseline)
    follow, follow_header = read_mask(args.followup)
    check_same_grid(args.followup, follow_header, args.baseline, base_header)
    rows = lesion_changes(base, follow, base_header.get_best_affine(), connectivity,
                          args.min_change)
    counts = change_summary(rows)
    write_csv(args.output, rows, list(CHANGE_COLUMNS))
    if args.summary is not None:
        write_json(args.summary, {"baseline": str(args.baseline), "followup": str(args.followup),
                                  "connectivity": connectivity, "min_change": args.min_change,
                                  **counts})
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" -> {args.output}")
    return 0
