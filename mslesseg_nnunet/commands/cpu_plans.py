"""``mslesseg cpu-plans``: write shrunk nnU-Net plans for CPU training."""
from __future__ import annotations

from mslesseg_nnunet.cpu_plans import (BATCH_SIZE, BASE_FEATURES, MAX_FEATURES, NUM_STAGES,
                                       TARGET_PATCH, write_cpu_plans)
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.nnunet_env import apply_nnunet_environment


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "cpu-plans", help="write shrunk plans (small network, patch, batch) for CPU training",
        description=f"Write PLANS_NAME.json next to the source plans in "
                    f"$nnUNet_preprocessed/DatasetNNN_*: {NUM_STAGES} stages, "
                    f"{BASE_FEATURES}-{MAX_FEATURES} features, patch about "
                    f"{'x'.join(map(str, TARGET_PATCH))} clipped to the median image shape, "
                    f"batch {BATCH_SIZE}; same data_identifier, so the preprocessed data is reused. "
                    "Then: nnUNetv2_train N 3d_fullres 0 -tr TRAINER -p nnUNetPlansCPU -device cpu")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or name (DatasetNNN_Name)")
    p.add_argument("--source-plans", default="nnUNetPlans",
                   help="plans identifier to shrink (default nnUNetPlans; e.g. nnUNetResEncUNetMPlans)")
    p.add_argument("--plans-name", default="nnUNetPlansCPU",
                   help="identifier of the written plans (default nnUNetPlansCPU)")
    p.add_argument("--configuration", default="3d_fullres", help="configuration to shrink")
    p.add_argument("--patch-size", type=int, nargs=3, default=list(TARGET_PATCH),
                   metavar=("Z", "Y", "X"),
                   help="target patch: the source patch is scaled (aspect kept) to at most this many "
                        f"voxels (default {' '.join(map(str, TARGET_PATCH))}; e.g. 32 32 32 for "
                        "faster iterations on small images)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing plans file")
    p.set_defaults(func=run)


def run(args) -> int:
    if min(args.patch_size) < 1:
        raise UserError(f"--patch-size {' '.join(map(str, args.patch_size))}: sizes must be positive")
    apply_nnunet_environment()
    path = write_cpu_plans(args.dataset, args.source_plans, args.plans_name, args.configuration,
                           args.overwrite, args.patch_size)
    print(path)
    return 0
