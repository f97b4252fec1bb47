"""``mslesseg segment``: native scans in, native lesion mask, probability map, lesion table and
QC page out (preprocess + predict + to-native), for one patient or a whole cohort."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.commands.preprocess import add_native_options
from mslesseg_nnunet.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment", help="segment a new patient's native scans (or a folder / BIDS dataset)",
        description="For each subject: `mslesseg preprocess`, `mslesseg predict` with the given "
                    "models (channels taken from the inputs), then back to the native FLAIR grid. "
                    "Writes OUT/<subject>/lesion_mask.nii.gz, lesion_probability.nii.gz, "
                    "lesions.csv, qc.html and preprocessed/, and OUT/cohort.csv. One patient: "
                    "--flair [--t1] [--t2] (subject name from --subject); a cohort: --input DIR "
                    "(BIDS sub-*/anat/*_FLAIR.nii.gz with _T1w/_T2w, or <subject>/FLAIR.nii.gz "
                    "[T1.nii.gz] [T2.nii.gz]). Finished subjects are skipped when rerun.")
    add_native_options(p, flair_required=False)
    p.add_argument("--subject", default="subject", help="subject name with --flair")
    p.add_argument("--input", type=Path, default=None, metavar="DIR",
                   help="BIDS dataset or folder of subject folders")
    p.add_argument("--models", nargs="+", type=Path, required=True, metavar="MODEL_DIR",
                   help="nnU-Net model folders, as for `mslesseg predict`")
    p.add_argument("--folds", nargs="+", default=None, help="folds to run (default: all)")
    p.add_argument("--params", type=Path, default=None,
                   help="tuned.json from `mslesseg tune` (default: as `mslesseg predict`)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda when available, else cpu")
    p.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.atomic import check_no_overlap
    from mslesseg_nnunet.commands.preprocess import channel_paths
    from mslesseg_nnunet.native.segment import find_subjects, segment
    from mslesseg_nnunet.nnunet_env import apply_nnunet_environment
    from mslesseg_nnunet.postprocessing.params import load_params

    if (args.input is None) == (args.flair is None):
        raise UserError("--input/--flair: give either --input DIR or --flair (one patient)")
    if args.input is None:
        subjects = {args.subject: channel_paths(args)}
    elif args.t1 or args.t2:
        raise UserError("--t1/--t2: only with --flair")
    else:
        subjects = find_subjects(args.input)
    check_no_overlap(args.output, [args.input, *channel_paths(args).values(), *args.models,
                                   args.params])
    apply_nnunet_environment()
    rows = segment(subjects, args.models, args.output,
                   {"skull_stripped": args.skull_stripped, "dof": args.dof, "n4": not args.no_n4},
                   {"folds": args.folds, "device": args.device, "tta": not args.disable_tta,
                    "params": load_params(args.params) if args.params else None, "workers": 0})
    print(f"{len(rows)} subjects -> {args.output / 'cohort.csv'}")
    return 0
