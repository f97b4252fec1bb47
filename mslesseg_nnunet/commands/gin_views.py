"""``mslesseg gin-views``: a derived dataset with offline GIN views of every training case (MMS)."""
from __future__ import annotations

from mslesseg_nnunet.nnunet_env import apply_nnunet_environment


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gin-views", help="derive a dataset with GIN views of every training case (offline GIN, MMS)",
        description="Write a derived nnU-Net raw dataset: the source's cases (linked) plus VIEWS "
                    "GIN-augmented copies <case>_ginNN of every training case, made once, labels "
                    "linked; splits_final.json keeps the source's folds (patients never split), "
                    "views joining their original's training folds. Then plan, preprocess and "
                    "train it like any dataset.")
    p.add_argument("--source", type=int, required=True, metavar="N", help="id of the dataset to augment")
    p.add_argument("--dataset-id", type=int, required=True, metavar="M", help="new dataset id")
    p.add_argument("--name", default=None, help="new dataset name (default: source name + GIN)")
    p.add_argument("--views", type=int, default=10, metavar="V",
                   help="GIN views per training case (default 10, as MMS)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the views (default 0)")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="worker processes (default: CPU count, at most 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(func=run)


def run(args) -> int:
    apply_nnunet_environment()
    from mslesseg_nnunet.dataset_conversion.gin_views import gin_views_dataset

    folder = gin_views_dataset(args.source, args.dataset_id, args.name, views=args.views, seed=args.seed,
                               workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {folder}")
    return 0
