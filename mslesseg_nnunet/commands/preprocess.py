"""``mslesseg preprocess``: native FLAIR (+T1, T2) -> the MSLesSeg space (FSL MNI152 1 mm)."""
from __future__ import annotations

from pathlib import Path


def add_native_options(p, flair_required: bool) -> None:
    """Input channels and preprocessing options shared by ``preprocess`` and ``segment``."""
    p.add_argument("--flair", type=Path, required=flair_required, default=None,
                   help="native FLAIR")
    p.add_argument("--t1", type=Path, default=None, help="native T1 (same session)")
    p.add_argument("--t2", type=Path, default=None, help="native T2 (same session)")
    p.add_argument("--skull-stripped", action="store_true",
                   help="inputs are already brain-extracted (template metric on the brain only, "
                        "centres of mass aligned first)")
    p.add_argument("--dof", type=int, default=12, choices=(6, 12),
                   help="degrees of freedom of FLAIR -> template: 12 (affine, as MSLesSeg's "
                        "FLIRT; default) or 6 (rigid: keeps the brain's size)")
    p.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "preprocess", help="bring native FLAIR (+T1, T2) into the MSLesSeg space",
        description="N4 bias correction; rigid T1/T2 -> FLAIR; 12-dof affine FLAIR -> MNI152 "
                    "template onto the MSLesSeg grid (182x218x182, LAS); brain mask from the "
                    "registered template refined on the FLAIR. Writes OUT/FLAIR.nii.gz (T1, T2), "
                    "OUT/brain_mask.nii.gz, OUT/transforms/*.tfm (ITK) and OUT/provenance.json. "
                    "Offline: the template ships in the nilearn wheel.")
    add_native_options(p, flair_required=True)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=run)


def channel_paths(args) -> dict[str, Path]:
    return {c: p for c, p in (("FLAIR", args.flair), ("T1", args.t1), ("T2", args.t2)) if p}


def run(args) -> int:
    from mslesseg_nnunet.atomic import check_no_overlap
    from mslesseg_nnunet.native.preprocess import preprocess

    check_no_overlap(args.output, channel_paths(args).values())
    provenance = preprocess(channel_paths(args), args.output, args.skull_stripped, args.dof,
                            not args.no_n4, args.overwrite)
    seconds = sum(provenance["seconds"].values())
    print(f"wrote {args.output} ({seconds:.0f} s)")
    return 0
