"""``mslesseg synth mslesseg|msseg2 OUT``: deterministic synthetic datasets in the real layouts."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import finite_float


def _add_common(p, default_patients: int, default_test: int) -> None:
    p.add_argument("out", type=Path, metavar="OUT", help="output folder (must not exist or be empty)")
    p.add_argument("--patients", type=int, default=default_patients,
                   help=f"training patients (default {default_patients})")
    p.add_argument("--test-patients", type=int, default=default_test,
                   help=f"test patients (default {default_test})")
    p.add_argument("--spacing", type=finite_float, default=1.0, metavar="MM",
                   help="voxel size multiplier: 1 = the real grid (default), 2 or 3 for fast demos")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed = identical files")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: 2, or fewer CPUs if fewer are usable)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="write a synthetic MSLesSeg or MSSEG-2 dataset (no download)",
        description="Write a deterministic synthetic dataset in the real MSLesSeg or MSSEG-2 "
                    "layout: MNI152 template anatomy, MS-like lesions, per-scanner contrasts.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", parser_class=type(p))
    kinds.required = True
    m = kinds.add_parser("mslesseg", help="MSLesSeg layout: train/P{n}/T{k}/..., test/P{n}/..., "
                                          "info_dataset/")
    _add_common(m, default_patients=10, default_test=2)
    m.add_argument("--timepoints", type=int, default=4, metavar="K",
                   help="most timepoints per training patient, 1-4 (default 4)")
    m.set_defaults(func=run)
    s = kinds.add_parser("msseg2", help="MSSEG-2 layout: training/<id>/..., testing/<id>/...")
    _add_common(s, default_patients=8, default_test=2)
    s.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.synth import generate_msseg2, generate_mslesseg

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be at least 1, got {args.workers}")
    common = dict(patients=args.patients, test_patients=args.test_patients, spacing=args.spacing,
                  seed=args.seed, overwrite=args.overwrite, workers=args.workers)
    if args.kind == "mslesseg":
        records = generate_mslesseg(args.out, max_timepoints=args.timepoints, **common)
        print(f"wrote {len(records)} scans to {args.out}")
    else:
        records = generate_msseg2(args.out, **common)
        print(f"wrote {len(records)} patients to {args.out}")
    return 0
