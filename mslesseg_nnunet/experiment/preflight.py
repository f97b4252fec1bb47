"""Checks made just before an experiment's jobs start (after the file itself validated)."""
from __future__ import annotations

from pathlib import Path

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.experiment.schema import Experiment
from mslesseg_nnunet.vocabulary import dataset_folder


def check_dataset_ids(exp: Experiment) -> None:
    """Refuse dataset ids that nnUNet_raw already uses under another name.

    The experiment owns the datasets it writes (``[source]`` and ``[[labellings]]``,
    or ``[[sources]]`` and merged ``[[training_sets]]``, ids with their names) and
    rewrites them when their step reruns; a dataset of the same id with a different
    name belongs to someone else.
    """
    raw = Path(exp.nnunet_dirs()["nnUNet_raw"])
    if exp.sources:
        owned = [(f"[[sources]] {s.key!r} dataset_id", s.dataset_id, s.name)
                 for s in exp.sources if s.kind != "nnunet"]
        owned += [(f"[[training_sets]] {lab.key!r} dataset_id", lab.dataset_id, lab.name)
                  for lab in exp.labellings if lab.kind == "merge"]
    elif exp.source is None or exp.source.kind == "nnunet":
        return
    else:
        owned = [("[source] dataset_id", exp.source.dataset_id, exp.source.name)]
        owned += [(f"[[labellings]][{i}] dataset_id", lab.dataset_id, lab.name)
                  for i, lab in enumerate(exp.labellings) if lab.kind != "binary"]
    for key, dataset_id, name in owned:
        for folder in sorted(raw.glob(f"Dataset{dataset_id:03d}_*")):
            if folder.name != dataset_folder(dataset_id, name):
                raise UserError(f"{exp.file.name}: {key}: {dataset_id} is already used by "
                                f"{folder} (choose another id)")
