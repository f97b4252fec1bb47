"""Conventions for the ``dataset.json`` files our converters write.

Besides nnU-Net's own keys, a dataset written by mslesseg-nnunet records
``"lesion_labels"``: the label values whose union is "lesion" (``[1]`` for
binary data, ``[1, 2, 3]`` for multi-size labels, ``[1, 2]`` for
distance-based labels), and ``"labelling"``: how those labels were made
(``{"kind": "binary" | "msl" | "dbl", ...parameters}``). Every later stage
collapses predictions to one lesion probability with these.
"""
from __future__ import annotations

import json
from pathlib import Path

from mslesseg_nnunet.errors import UserError


def load_dataset_json(path: Path) -> dict:
    """Read a ``dataset.json``; raise UserError naming the file when it is missing or invalid."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def lesion_labels(dataset_json: dict) -> list[int]:
    """Label values that together make up "lesion".

    Uses ``lesion_labels`` when present, else every non-background label of
    ``labels`` (datasets not written by us). Region-based label sets are
    rejected: they cannot be collapsed by summing class probabilities.
    """
    if "lesion_labels" in dataset_json:
        return sorted(int(v) for v in dataset_json["lesion_labels"])
    values = []
    for name, value in dataset_json.get("labels", {}).items():
        if isinstance(value, (list, tuple)):
            raise UserError(f"dataset.json: label {name!r} is a region; region-based datasets "
                            "cannot be collapsed to one lesion probability")
        if int(value) != 0 and name != "ignore":
            values.append(int(value))
    return sorted(values)
