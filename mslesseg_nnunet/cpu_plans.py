"""Shrunk nnU-Net plans that train in about a second per iteration on a CPU.

The shrunk configuration keeps the source's ``data_identifier``, spacing and
normalisation, so nnU-Net reuses the data already preprocessed for the source
plans; only the network (fewer stages, fewer features), the patch and the batch
size change. Works for any architecture whose per-stage ``arch_kwargs`` are
lists of length ``n_stages`` (encoder) or ``n_stages - 1`` (decoder), i.e.
nnU-Net's PlainConvUNet and ResidualEncoderUNet presets.
"""
from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import check_can_write, write_json
from mslesseg_nnunet.errors import UserError

NUM_STAGES = 4
BASE_FEATURES = 8
MAX_FEATURES = 64
TARGET_PATCH = (48, 64, 48)
BATCH_SIZE = 2


def stage_divisors(strides: list) -> np.ndarray:
    """Per-axis product of the strides: the patch size must be a multiple of it."""
    return np.prod(np.asarray(strides, dtype=int), axis=0)


def shrunk_patch_size(patch_size, median_shape, divisors,
                      target_voxels: int = int(np.prod(TARGET_PATCH))) -> list[int]:
    """Source patch scaled (aspect kept) to at most ``target_voxels``, clipped to the
    median image shape, and rounded down to multiples of ``divisors`` (at least one)."""
    patch = np.asarray(patch_size, dtype=float)
    scale = min(1.0, (target_voxels / patch.prod()) ** (1 / len(patch)))
    patch = np.minimum(patch * scale, np.asarray(median_shape, dtype=float))
    divisors = np.asarray(divisors, dtype=int)
    return [int(v) for v in np.maximum(divisors, (patch // divisors).astype(int) * divisors)]


def shrink_architecture(arch_kwargs: dict, num_stages: int = NUM_STAGES) -> dict:
    """Keep the first ``num_stages`` stages; features 8, 16, ... capped at 64."""
    source_stages = arch_kwargs["n_stages"]
    n = min(num_stages, source_stages)
    out = deepcopy(arch_kwargs)
    for key, value in arch_kwargs.items():
        if isinstance(value, (list, tuple)) and len(value) == source_stages:
            out[key] = list(value[:n])
        elif key.endswith("decoder") and isinstance(value, (list, tuple)) \
                and len(value) == source_stages - 1:
            out[key] = list(value[:n - 1])
    out["n_stages"] = n
    out["features_per_stage"] = [min(BASE_FEATURES * 2 ** i, MAX_FEATURES) for i in range(n)]
    return out


def shrink_configuration(configuration: dict, target_patch=TARGET_PATCH) -> dict:
    """A copy of one resolved plans configuration with the CPU network, patch and batch size;
    the patch has at most as many voxels as ``target_patch``."""
    out = deepcopy(configuration)
    out.pop("inherits_from", None)
    arch = shrink_architecture(configuration["architecture"]["arch_kwargs"])
    out["architecture"]["arch_kwargs"] = arch
    out["patch_size"] = shrunk_patch_size(configuration["patch_size"],
                                          configuration["median_image_size_in_voxels"],
                                          stage_divisors(arch["strides"]),
                                          int(np.prod(target_patch)))
    out["batch_size"] = BATCH_SIZE
    return out


def make_cpu_plans(plans: dict, configuration: str, plans_name: str,
                   target_patch=TARGET_PATCH) -> dict:
    """Whole plans dict with ``configuration`` shrunk and ``plans_name`` renamed."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    resolved = PlansManager(deepcopy(plans)).get_configuration(configuration).configuration
    out = deepcopy(plans)
    out["plans_name"] = plans_name
    out["configurations"][configuration] = shrink_configuration(resolved, target_patch)
    return out


def preprocessed_dataset_dir(dataset: str | int) -> Path:
    """``$nnUNet_preprocessed/DatasetNNN_Name`` for a dataset id or name."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError:
        raise UserError(f"-d {dataset}: no such dataset in nnUNet_raw / nnUNet_preprocessed / "
                        f"nnUNet_results") from None
    return Path(str(nnUNet_preprocessed)) / name


def write_cpu_plans(dataset: str | int, source_plans: str = "nnUNetPlans",
                    plans_name: str = "nnUNetPlansCPU", configuration: str = "3d_fullres",
                    overwrite: bool = False, target_patch=TARGET_PATCH) -> Path:
    """Write ``plans_name.json`` next to ``source_plans.json``; return its path."""
    folder = preprocessed_dataset_dir(dataset)
    source = folder / f"{source_plans}.json"
    target = folder / f"{plans_name}.json"
    if not source.is_file():
        raise UserError(f"{source}: plans file not found (run nnUNetv2_plan_and_preprocess first)")
    if source == target:
        raise UserError(f"--plans-name {plans_name}: must differ from --source-plans")
    plans = json.loads(source.read_text())
    if configuration not in plans.get("configurations", {}):
        raise UserError(f"{source}: has no configuration {configuration!r} "
                        f"(has {', '.join(plans.get('configurations', {}))})")
    check_can_write(target, overwrite)
    cpu_plans = make_cpu_plans(plans, configuration, plans_name, target_patch)
    write_json(target, cpu_plans)
    return target
