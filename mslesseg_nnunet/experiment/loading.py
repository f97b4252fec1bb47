"""Reading an experiment file: TOML -> validated :class:`~mslesseg_nnunet.experiment.schema.Experiment`
(the sections of a single-source file in ``schema``, those of a cross-dataset one in ``crossdata``)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.experiment import crossdata, schema
from mslesseg_nnunet.experiment.checks import Table


def load_experiment(path: Path, check_paths: bool = True) -> schema.Experiment:
    """Read and validate an experiment file.

    Parameters
    ----------
    path : Path
        The TOML file; relative paths inside it are relative to its folder.
    check_paths : bool
        Also check that input folders and datasets exist (off for recipes
        written for another machine).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read experiment file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    return parse_experiment(data, path, check_paths)


def parse_experiment(data: dict, path: Path, check_paths: bool = True) -> schema.Experiment:
    """Validate parsed TOML ``data`` read from ``path`` (see :func:`load_experiment`)."""
    file = path.name
    base = path.resolve().parent
    top = Table(data, "", file)
    head = top.sub("experiment")
    name = head.get("name", str)
    if not schema.EXPERIMENT_NAME.match(name):
        head.fail("name", f"{name!r} must be letters, digits, '_' or '-'")
    workdir = base / head.get("workdir", str, f"{path.stem}_work")
    root = head.get("nnunet_root", str, None)
    nnunet_root = base / root if root else None
    head.finish()
    env = schema.parse_env(top.sub("env", {}))

    raw = Path(schema.nnunet_dirs(nnunet_root)["nnUNet_raw"])
    sources = crossdata.parse_sources(top, base, workdir, raw, check_paths)
    source = schema.parse_section(top, "source", schema.parse_source, base, workdir, raw, check_paths)
    labellings = crossdata.parse_training_sets(top, sources) if sources \
        else schema.parse_labellings(top, source, file)
    training = schema.parse_section(top, "training", schema.parse_training)
    if training is not None and source is None and not sources:
        top.fail("[training]", "needs a [source] or [[sources]] section")
    tuning = schema.parse_section(top, "tuning", schema.parse_tuning, training)
    ensemble = schema.parse_section(top, "ensemble", schema.parse_ensemble, training, labellings)
    test = schema.parse_section(top, "test", schema.parse_test, source, base, raw, training, check_paths)
    tests = crossdata.parse_tests(top, sources, base, raw, training, check_paths)
    resources = schema.parse_resources(top.sub("resources", {}))
    custom = schema.parse_custom_steps(top, file)
    top.finish()
    return schema.Experiment(path.resolve(), name, workdir, nnunet_root, env, source, labellings,
                             training, tuning, ensemble, test, resources, custom, sources, tests)
