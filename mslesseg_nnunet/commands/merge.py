"""``mslesseg merge``: one nnU-Net raw dataset from several converted ones."""
from __future__ import annotations

from mslesseg_nnunet.commands.normalise import add_quantile_option, apply_quantile_option
from mslesseg_nnunet.nnunet_env import apply_nnunet_environment


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "merge", help="merge converted datasets into one training dataset (cross-dataset)",
        description="Write $nnUNet_raw/DatasetNNN_Name holding every case of the --sources "
                    "datasets: images and labels linked, case ids prefixed with their source's "
                    "name, channels matched by name, case_map.json merged, patient-grouped "
                    "splits_final.json.")
    p.add_argument("--sources", type=int, nargs="+", required=True, metavar="ID",
                   help="ids of two or more converted binary datasets")
    p.add_argument("--dataset-id", type=int, required=True, metavar="N", help="new dataset id")
    p.add_argument("--name", default=None,
                   help="new dataset name (default: the source names joined by _)")
    p.add_argument("--channels", default=None,
                   help="comma-separated channel names to keep, in order (default: the first "
                        "source's); every source must have them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    add_quantile_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    apply_nnunet_environment()
    from mslesseg_nnunet.dataset_conversion import merge_datasets

    channels = [c.strip() for c in args.channels.split(",")] if args.channels else None
    folder = merge_datasets(args.sources, args.dataset_id, args.name, channels, args.overwrite)
    apply_quantile_option(args, folder, None)
    print(f"wrote {folder}")
    return 0
