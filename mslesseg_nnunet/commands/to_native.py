"""``mslesseg to-native``: a mask or probability map on the MSLesSeg grid -> native FLAIR grid."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "to-native", help="map a mask or probability map back onto the native FLAIR grid",
        description="Resample IMAGE (on the MSLesSeg grid) onto the native FLAIR grid of a "
                    "`mslesseg preprocess` output, with the native FLAIR's header: nearest "
                    "neighbour with --label (uint8), else linear (float32).")
    p.add_argument("image", type=Path, metavar="IMAGE")
    p.add_argument("--preprocessed", type=Path, required=True, metavar="OUT",
                   help="the `mslesseg preprocess` output folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    p.add_argument("--label", action="store_true", help="IMAGE is a label mask (nearest)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.native.to_native import to_native

    to_native(args.image, args.preprocessed, args.output, args.label, args.overwrite)
    print(f"wrote {args.output}")
    return 0
