"""Choices, defaults and ranges read by argparse, the experiment schema and the library alike."""
from __future__ import annotations

import re

# Evaluation protocols (`evaluate --protocol`, `tune --protocol`, experiment files).
PROTOCOLS = ("mslesseg", "msseg2")

# MSLesSeg: channels and fold schemes of `convert mslesseg` (--modalities, --folds).
MSLESSEG_MODALITIES = ("FLAIR", "T1", "T2")
MSLESSEG_FOLDS = ("grouped", "paper")

# MSSEG-2: the ground truths `convert msseg2 --label` can train on.
MSSEG2_LABELS = ("consensus", "expert1", "expert2", "expert3", "expert4", "majority")

# Voxel-size factors of the synthetic datasets (`synth --spacing`, [source] spacing).
SYNTH_SPACING_RANGE = (1.0, 8.0)

# Case-id prefixes of the converted challenge datasets (MSLesSeg_P01_T1, MSSEG2_013): conversion
# writes them, evaluation maps them back to the challenges' own names.
MSLESSEG_PREFIX = "MSLesSeg"
MSSEG2_PREFIX = "MSSEG2"

# `Name` of nnU-Net's DatasetNNN_Name (converters' --name, an experiment's dataset names).
DATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
DATASET_NAME_RULE = "must start with a letter and hold only letters, digits, '_', '.', '-'"


def dataset_folder(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name of a dataset: ``Dataset101_MSLesSeg``."""
    return f"Dataset{int(dataset_id):03d}_{name}"
