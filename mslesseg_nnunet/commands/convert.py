"""``mslesseg convert mslesseg|msseg2|isbi2015|msseg2016|3dmrms|folders``: a dataset as
distributed -> nnU-Net raw dataset + folds (reference: docs/datasets.md)."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.commands.normalise import add_quantile_option, apply_quantile_option
from mslesseg_nnunet.nnunet_env import apply_nnunet_environment
from mslesseg_nnunet.vocabulary import MSLESSEG_FOLDS, MSLESSEG_MODALITIES, MSSEG2_LABELS


def _common(p) -> None:
    p.add_argument("--dataset-id", type=int, required=True, metavar="N",
                   help="nnU-Net dataset id (1-999)")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="worker processes (default: CPU count, at most 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    add_quantile_option(p)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert an MS lesion dataset to an nnU-Net raw dataset",
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
    m.add_argument("--modalities", default=",".join(MSLESSEG_MODALITIES),
                   help=f"channels, in order (default {','.join(MSLESSEG_MODALITIES)})")
    m.add_argument("--folds", default="grouped", choices=MSLESSEG_FOLDS,
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
                   choices=MSSEG2_LABELS,
                   help="ground truth to train on (majority: at least 3 of the 4 experts)")
    _common(s)
    s.set_defaults(func=run)
    _register_more(sub)


def _dataset_parser(sub, kind: str, summary: str, description: str, src_help: str,
                    name_default: str | None, name_help: str):
    """A ``convert KIND SRC --name ... --dataset-id ...`` sub-parser."""
    p = sub.add_parser(kind, help=summary, description=description)
    p.add_argument("src", type=Path, metavar="SRC", help=src_help)
    p.add_argument("--name", default=name_default, required=kind == "folders", help=name_help)
    _common(p)
    p.set_defaults(func=run)
    return p


def _register_more(sub) -> None:
    """The datasets of issue 16: ISBI 2015, MSSEG-2016, 3D-MR-MS and any layout by patterns."""
    i = _dataset_parser(
        sub, "isbi2015", "ISBI 2015 longitudinal challenge: training/ and testdata_website/",
        "Convert ISBI 2015 (root holding training/ and testdata_website/). Case ids "
        "ISBI2015_training01_01; every timepoint of a patient in one fold; orig/ is ignored.",
        "ISBI 2015 dataset root", "ISBI2015", "dataset name (default ISBI2015)")
    i.add_argument("--modalities", default="FLAIR,T1,PD,T2",
                   help="channels, in order (default FLAIR,T1,PD,T2; T1 = the MPRAGE)")
    i.add_argument("--label", default="union", choices=("mask1", "mask2", "union", "intersection"),
                   help="rater mask(s) to train on (default union of the two raters, as seed "
                        "002's consensus)")
    m = _dataset_parser(
        sub, "msseg2016", "MICCAI 2016 MSSEG (2021 release): Training/ and Testing/",
        "Convert MSSEG-2016 (root holding Training/ and Testing/, Center_NN/Patient_NN/"
        "Preprocessed_Data/). Case ids MSSEG2016_train_C01_P01; the centre is kept in "
        "case_map.json. The 2016 portal layout is refused.",
        "MSSEG-2016 dataset root", "MSSEG2016", "dataset name (default MSSEG2016)")
    m.add_argument("--modalities", default="FLAIR,T1,T2,PD,T1POST",
                   help="channels, in order (default FLAIR,T1,T2,PD,T1POST; PD = DP, "
                        "T1POST = GADO)")
    m.add_argument("--label", default="consensus",
                   choices=("consensus", *(f"rater{k}" for k in range(1, 8)), "majority"),
                   help="mask to train on (majority: at least 4 of the 7 raters)")
    m.add_argument("--train-on", default="training", choices=("training", "testing", "both"),
                   help="subset(s) for imagesTr; the other goes to imagesTs/labelsTs")
    r = _dataset_parser(
        sub, "3dmrms", "3D-MR-MS (Ljubljana): patientNN/ folders, cross-sectional or longitudinal",
        "Convert 3D-MR-MS patientNN/ folders (original distribution, open_ms_data "
        "coregistered[_resampled]/ or MNI/, or its longitudinal/ part as a new-lesion dataset "
        "like MSSEG-2). Case ids MRMS3D_patient07 / MRMS3DLong_patient01.",
        "folder holding patientNN/ (or one above it holding exactly one such)", None,
        "dataset name (default MRMS3D, or MRMS3DLong for the longitudinal part)")
    r.add_argument("--modalities", default=None,
                   help="channels, in order, among FLAIR,T1,T1POST,T2 (default all; the "
                        "longitudinal part is always time01,time02 = the two FLAIR studies)")
    f = _dataset_parser(
        sub, "folders", "any layout, described by path patterns",
        "Convert any layout: --channel NAME=PATTERN (repeatable) and --label PATTERN, paths "
        "relative to SRC where {case} stands for one path component ({patient}, optional, "
        "groups folds). Cases without a label go to imagesTs.",
        "dataset root", None, "dataset name (also the case-id prefix)")
    f.add_argument("--channel", action="append", required=True, metavar="NAME=PATTERN",
                   help="e.g. FLAIR={case}/anat/{case}_FLAIR.nii.gz (in channel order)")
    f.add_argument("--label", required=True, metavar="PATTERN",
                   help="e.g. derivatives/lesions/{case}/{case}_label-lesion_mask.nii.gz")


def run(args) -> int:
    apply_nnunet_environment()
    from mslesseg_nnunet import dataset_conversion as dc

    common = {"workers": args.workers, "overwrite": args.overwrite}
    with dc.claim_dataset_id(args.dataset_id):
        folder = _convert(dc, args, common)
        apply_quantile_option(args, folder, args.workers)
    print(f"wrote {folder}")
    return 0


def _convert(dc, args, common: dict) -> Path:
    if args.dataset == "mslesseg":
        folder = dc.convert_mslesseg(args.src, args.dataset_id, args.name, args.modalities,
                                     args.folds, **common)
    elif args.dataset == "msseg2":
        folder = dc.convert_msseg2(args.src, args.dataset_id, args.name, args.label, **common)
    elif args.dataset == "isbi2015":
        folder = dc.convert_isbi2015(args.src, args.dataset_id, args.name, args.modalities,
                                     args.label, **common)
    elif args.dataset == "msseg2016":
        folder = dc.convert_msseg2016(args.src, args.dataset_id, args.name, args.modalities,
                                      args.label, args.train_on, **common)
    elif args.dataset == "3dmrms":
        folder = dc.convert_3dmrms(args.src, args.dataset_id, args.name, args.modalities,
                                   **common)
    else:
        folder = dc.convert_folders(args.src, args.dataset_id, args.name, args.channel,
                                    args.label, **common)
    return folder
