"""``mslesseg predict``: competition-style batch prediction with fusion and postprocessing."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.commands.ensemble import RULE_HELP, parse_weights
from mslesseg_nnunet.ensembles.blending import BLENDINGS
from mslesseg_nnunet.postprocessing.params import RULES, PostprocessingParams, load_params


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict a test folder with every fold of every model, fused",
        description="Run every requested fold of every model (nnU-Net's predictor, probabilities "
                    "kept), fuse (mean, or MadSeg for MSL+DBL models) and postprocess, and write "
                    "masks in the input's own naming and header geometry, OUT/submission.zip and "
                    "OUT/ensemble.json. INPUT: an MSLesSeg test folder (P{n}/P{n}_{MOD}.nii.gz), "
                    "an MSLesSeg training-style tree, an MSSEG-2 patients folder, an ISBI 2015, "
                    "MSSEG-2016 or 3D-MR-MS folder, or an nnU-Net imagesTs folder (that of a "
                    "converted dataset writes back in its source naming, docs/datasets.md). "
                    "Finished cases are skipped when rerun. Models may take different input "
                    "channels: each reads its own (an nnU-Net folder holds the first model's "
                    "channels, then the new ones of the next).")
    p.add_argument("-i", "--input", type=Path, required=True, metavar="INPUT")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    p.add_argument("--models", nargs="+", type=Path, required=True, metavar="MODEL_DIR",
                   help="nnU-Net model folders DatasetX/TRAINER__PLANS__CONFIG")
    p.add_argument("--folds", nargs="+", default=None,
                   help="folds to run for every model (default: every fold_K folder)")
    p.add_argument("--params", type=Path, default=None,
                   help="tuned.json from `mslesseg tune` (default: MadSeg defaults for MSL+DBL "
                        "models, else mean with threshold 0.5); when it names chosen members, "
                        "only those of --models run, with its weights")
    p.add_argument("--rule", choices=RULES, default=None, help=RULE_HELP)
    p.add_argument("--weights", nargs="+", default=None, metavar="W",
                   help="one weight per model, or cv-dice: each model's mean CV Dice (from its "
                        "fold_K/validation probabilities) (default: all 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda when available, else cpu")
    p.add_argument("--save-probabilities", action="store_true",
                   help="also write OUT/probabilities/{case}.npz (fused lesion probability)")
    p.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation")
    p.add_argument("--workers", type=int, default=2,
                   help="nnU-Net preprocessing/export processes (0: sequential, in-process)")
    p.add_argument("--overwrite", action="store_true", help="redo every case (replaces OUT)")
    p.add_argument("--blending", choices=BLENDINGS, default=None,
                   help="sliding-window blending of every model (default: cib-grid for models "
                        "trained with CIB heads, gaussian for the others); cib-patch/cib-grid need "
                        "CIB heads; oracle-patch/oracle weight by the true Dice (see docs/cib.md)")
    p.add_argument("--oracle-gt", type=Path, default=None, metavar="DIR",
                   help="ground truth of the input cases for the oracle blendings (layouts as "
                        "in `mslesseg evaluate`)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mslesseg_nnunet.prediction import predict_folder
    from mslesseg_nnunet.nnunet_env import apply_nnunet_environment

    apply_nnunet_environment()
    params = load_params(args.params) if args.params else None
    if args.rule:
        params = (params or PostprocessingParams()).replace(rule=args.rule)
    predict_folder(args.input, args.output, args.models, args.folds, params, args.device,
                   args.save_probabilities, not args.disable_tta, args.overwrite,
                   max(0, args.workers), parse_weights(args.weights), args.params, args.blending,
                   args.oracle_gt)
    print(f"wrote {args.output}")
    return 0
