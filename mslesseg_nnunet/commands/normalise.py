"""``mslesseg normalise dataset|inputs``: quantile normalisation of a raw dataset, or of the
inputs of a stock ``nnUNetv2_predict`` run (reference: docs/normalisation.md)."""
from __future__ import annotations

from pathlib import Path


def add_quantile_option(p) -> None:
    """``--quantile-normalise CHANNELS`` of the commands that write a raw dataset."""
    p.add_argument("--quantile-normalise", default=None, metavar="CHANNELS",
                   help="then quantile-normalise these channels (comma-separated, e.g. FLAIR,T1; "
                        "seed 002): reference from imagesTr, stored in dataset.json, applied "
                        "here and by `mslesseg predict` (docs/normalisation.md)")


def apply_quantile_option(args, folder: Path, workers: int | None) -> None:
    """Run ``--quantile-normalise`` on the dataset just written."""
    if args.quantile_normalise:
        from mslesseg_nnunet.dataset_conversion.normalise import normalise_dataset

        normalise_dataset(folder, args.quantile_normalise.split(","), workers=workers)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "normalise", help="quantile-normalise a raw dataset's channels (seed 002)",
        description="Quantile normalisation (Badea & Popa 2024): each scan's intensity "
                    "distribution inside the brain (nonzero voxels) is mapped onto a reference "
                    "distribution computed from the training set.")
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    d = sub.add_parser("dataset", help="normalise $nnUNet_raw/DatasetNNN_* in place",
                       description="Compute each chosen channel's reference from imagesTr, store "
                                   "it in dataset.json, rewrite imagesTr and imagesTs (float32). "
                                   "Rerunning finishes an interrupted run; channels normalised "
                                   "before keep their reference.")
    d.add_argument("-d", "--dataset-id", type=int, required=True, metavar="N")
    d.add_argument("--channels", default=None,
                   help="comma-separated channel names (default: every channel)")
    d.add_argument("--template", default=None, metavar="CASE",
                   help="reference = this training case's distribution (seed 002's 'template'; "
                        "default: the mean of all training cases' quantile functions, Bolstad)")
    d.add_argument("--workers", type=int, default=None, metavar="K",
                   help="worker processes (default: CPU count, at most 8)")
    d.set_defaults(func=run_dataset)
    i = sub.add_parser("inputs", help="normalise an input folder for stock nnUNetv2_predict",
                       description="Write IN's cases (nnU-Net naming, the model's channels) to OUT "
                                   "with the channels the model was trained quantile-normalised "
                                   "normalised by its stored references; `mslesseg predict` does "
                                   "this by itself.")
    i.add_argument("--model", type=Path, required=True, metavar="MODEL_DIR",
                   help="nnU-Net model folder (its dataset.json holds the references)")
    i.add_argument("-i", "--input", type=Path, required=True, metavar="IN")
    i.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    i.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    i.set_defaults(func=run_inputs)


def run_dataset(args) -> int:
    from mslesseg_nnunet.dataset_conversion.normalise import normalise_dataset
    from mslesseg_nnunet.dataset_conversion.raw_dataset import find_raw_dataset
    from mslesseg_nnunet.nnunet_env import apply_nnunet_environment

    apply_nnunet_environment()
    folder = find_raw_dataset(args.dataset_id, "--dataset-id")
    channels = args.channels.split(",") if args.channels else None
    normalise_dataset(folder, channels, args.template, args.workers)
    print(f"normalised {folder}")
    return 0


def run_inputs(args) -> int:
    from mslesseg_nnunet.atomic import atomic_dir, check_no_overlap
    from mslesseg_nnunet.dataset_conversion.normalise import case_files
    from mslesseg_nnunet.dataset_json import load_dataset_json
    from mslesseg_nnunet.errors import UserError
    from mslesseg_nnunet.quantile_normalisation import normalise_folder, stored_references

    check_no_overlap(args.output, [args.input, args.model])
    info = load_dataset_json(args.model / "dataset.json")
    references = stored_references(info)
    if not references:
        raise UserError(f"{args.model / 'dataset.json'}: the model was not trained on "
                        "quantile-normalised data (nothing to do)")
    cases = list(case_files(args.input, info))
    if not cases:
        raise UserError(f"{args.input}: no {{case}}_0000{info['file_ending']} files")
    with atomic_dir(args.output, args.overwrite) as tmp:
        normalise_folder(args.input, tmp, cases, range(len(info["channel_names"])), references,
                         info["file_ending"])
    print(f"wrote {args.output}")
    return 0
