"""``mslesseg relabel msl|dbl``: a derived dataset with multi-size or distance-based labels."""
from __future__ import annotations

import argparse

from mslesseg_nnunet.components import CONNECTIVITIES, LESION_CONNECTIVITY
from mslesseg_nnunet.labelling import DEFAULT_DISTANCE2, DEFAULT_THRESHOLDS
from mslesseg_nnunet.nnunet_env import apply_nnunet_environment
from mslesseg_nnunet.numbers import finite_float


def _thresholds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"need comma-separated voxel counts, got {text!r}") \
            from None


def _common(p) -> None:
    p.add_argument("--source", type=int, required=True, metavar="N",
                   help="id of the binary dataset to relabel")
    p.add_argument("--dataset-id", type=int, required=True, metavar="M", help="new dataset id")
    p.add_argument("--name", default=None,
                   help="new dataset name (default: source name + MSL or DBL)")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="worker processes (default: CPU count, at most 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(func=run)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "relabel", help="derive a multi-size (msl) or distance-based (dbl) labelled dataset",
        description="Write a derived nnU-Net raw dataset with the same images (linked), case ids "
                    "and splits_final.json, labels computed on whole scans.")
    sub = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    msl = sub.add_parser("msl", help="multi-size labels: small/medium/large = 1/2/3",
                         description="Each lesion (connected component) gets a class by voxel "
                                     "count: < t1 -> 1, < t2 -> 2, else 3.")
    msl.add_argument("--connectivity", type=int, default=LESION_CONNECTIVITY, choices=CONNECTIVITIES,
                     help=f"lesion connectivity (default {LESION_CONNECTIVITY})")
    msl.add_argument("--thresholds", type=_thresholds,
                     default=DEFAULT_THRESHOLDS, help="size bin edges in voxels (default 100,1000)")
    _common(msl)
    dbl = sub.add_parser("dbl", help="distance-based labels: boundary/interior = 1/2",
                         description="Lesion voxels whose squared distance (voxels) to the "
                                     "background exceeds --distance2 are interior (2), the rest "
                                     "boundary (1).")
    dbl.add_argument("--distance2", type=finite_float, default=DEFAULT_DISTANCE2,
                     help="squared-distance threshold in voxels (default 4.5)")
    _common(dbl)


def run(args) -> int:
    apply_nnunet_environment()
    from mslesseg_nnunet.dataset_conversion import relabel_dataset

    options = ({"connectivity": args.connectivity, "thresholds": args.thresholds}
               if args.kind == "msl" else {"distance2": args.distance2})
    folder = relabel_dataset(args.kind, args.source, args.dataset_id, args.name,
                             workers=args.workers, overwrite=args.overwrite, **options)
    print(f"wrote {folder}")
    return 0
