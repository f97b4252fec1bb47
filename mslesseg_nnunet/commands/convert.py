"""``mslesseg convert mslesseg|msseg2``: a challenge dataset -> nnU-Net raw dataset + folds."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.nnunet_env import apply_nnunet_environment


def _common(p) -> None:
    p.add_argument("--dataset-id", type=int, required=True, metavar="N",
                   help="nnU-Net dataset id (1-999)")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="worker processes (default: CPU count, at most 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert MSLesSeg or MSSEG-2 to an nnU-Net raw dataset",
        description="Convert a challenge dataset as distributed into $nnUNet_raw/DatasetNNN_Name "
                    "(imagesTr/labelsTr/imagesTs[/labelsTs], dataset.json, case_map.json) and "
                    "write patient-grouped folds to $nnUNet_preprocessed/DatasetNNN_Name/"
                    "splits_final.json.")
    sub = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    m = sub.add_parser("mslesseg", help="MSLesSeg (ICPR 2024): train/ and test/ folders",
                       description="Convert MSLesSeg (root holding train/ and test/). Case ids "
                                   "MSLesSeg_P01_T1 (train), MSLesSeg_P54 (test).")
    m.add_argument("src", type=Path, metavar="SRC", help="MSLesSeg dataset root")
    m.add_argument("--name", default="MSLesSeg", help="dataset name (default MSLesSeg)")
    m.add_argument("--modalities", default="FLAIR,T1,T2",
                   help="channels, in order (default FLAIR,T1,T2)")
    m.add_argument("--folds", default="grouped", choices=("grouped", "paper"),
                   help="grouped: 5 patient-grouped folds balanced by scan count; paper: the "
                        "data descriptor's patient table as printed")
    _common(m)
    m.set_defaults(func=run)
    s = sub.add_parser("msseg2", help="MSSEG-2 (MICCAI 2021): training/ and testing/ folders",
                       description="Convert MSSEG-2 (root holding training/ and testing/). "
                                   "Channels time01, time02; case ids MSSEG2_013.")
    s.add_argument("src", type=Path, metavar="SRC", help="MSSEG-2 dataset root")
    s.add_argument("--name", default="MSSEG2", help="dataset name (default MSSEG2)")
    s.add_argument("--label", default="consensus",
                   choices=("consensus", "expert1", "expert2", "expert3", "expert4", "majority"),
                   help="ground truth to train on (majority: at least 3 of the 4 experts)")
    _common(s)
    s.set_defaults(func=run)


def run(args) -> int:
    apply_nnunet_environment()
    from mslesseg_nnunet.dataset_conversion import convert_msseg2, convert_mslesseg

    if args.dataset == "mslesseg":
        folder = convert_mslesseg(args.src, args.dataset_id, args.name, args.modalities,
                                  args.folds, args.workers, args.overwrite)
    else:
        folder = convert_msseg2(args.src, args.dataset_id, args.name, args.label,
                                args.workers, args.overwrite)
    print(f"wrote {folder}")
    return 0
