"""Any other layout -> nnU-Net raw dataset, described by path patterns.

A pattern is a path relative to SRC in which ``{case}`` stands for (part of)
one path component; ``{patient}`` may stand for another, and groups the cases
of one patient in one fold (without it every case is its own patient). E.g. a
BIDS tree::

    --channel FLAIR={case}/anat/{case}_FLAIR.nii.gz
    --label derivatives/lesions/{case}/{case}_label-lesion_mask.nii.gz

Cases are those of the first channel's pattern; a pattern ending ``.nii.gz``
also matches ``.nii`` and the reverse. Cases without a label go to imagesTs.
"""
from __future__ import annotations

import glob
import re
from pathlib import Path

from mslesseg_nnunet.dataset_conversion.cases import NIFTI_ENDINGS, Scan
from mslesseg_nnunet.dataset_conversion.layouts import nifti_file, require_nifti
from mslesseg_nnunet.dataset_conversion.parallel import check_workers
from mslesseg_nnunet.dataset_conversion.raw_dataset import check_dataset_id, write_grouped_dataset
from mslesseg_nnunet.errors import UserError

_FIELD = re.compile(r"\{(case|patient)\}")
_PIECES = re.compile(r"(\{(?:case|patient)\})")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Pattern:
    """A path pattern with ``{case}`` (required) and ``{patient}`` fields."""

    def __init__(self, text: str, option: str):
        self.text = text
        self.stem = next((text[: -len(e)] for e in NIFTI_ENDINGS if text.endswith(e)), None)
        if (self.stem is None or "{case}" not in text or text.startswith("/")
                or set(_FIELD.sub("", text)) & set("{}")):
            raise UserError(f"{option}: need a relative path with {{case}} (and optionally "
                            f"{{patient}}, no other braces) ending .nii or .nii.gz, got {text!r}")
        self.fields = set(_FIELD.findall(text))
        self.pieces = _PIECES.split(self.stem)  # literal text and "{field}", alternating
        parts, seen = [], set()
        for piece in self.pieces:
            field = piece[1:-1] if _FIELD.fullmatch(piece) else None
            if field is None:
                parts.append(re.escape(piece))
            else:
                parts.append(f"(?P={field})" if field in seen else f"(?P<{field}>[^/]+)")
                seen.add(field)
        self.regex = re.compile("".join(parts) + r"\.nii(\.gz)?")

    def matches(self, src: Path) -> list[dict[str, str]]:
        """The field values of every file under ``src`` that the pattern matches, sorted."""
        wildcard = "".join("*" if _FIELD.fullmatch(p) else glob.escape(p) for p in self.pieces)
        found = {}
        for path in src.glob(wildcard + ".nii*"):
            if m := self.regex.fullmatch(path.relative_to(src).as_posix()):
                found[tuple(sorted(m.groupdict().items()))] = m.groupdict()
        return [found[k] for k in sorted(found)]

    def file(self, src: Path, values: dict[str, str]) -> Path | None:
        """The existing file for ``values`` (either ending), else None."""
        stem = src / self.stem.format(**values)
        return nifti_file(stem.parent, stem.name)

    def require(self, src: Path, values: dict[str, str], what: str) -> Path:
        """``file(src, values)``; raise UserError ``"<stem>.nii[.gz]: missing <what>"``."""
        stem = src / self.stem.format(**values)
        return require_nifti(stem.parent, stem.name, what)


def parse_channels(specs: list[str]) -> dict[str, Pattern]:
    """``["FLAIR=PATTERN", ...]`` -> {channel name: Pattern}, in order."""
    if not specs:
        raise UserError("--channel: give at least one NAME=PATTERN")
    channels = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or not _CHANNEL_NAME.match(name) or name in channels:
            raise UserError(f"--channel: need NAME=PATTERN with distinct names (letters, digits, "
                            f"'_', '.', '-'), got {spec!r}")
        channels[name] = Pattern(text, f"--channel {name}")
    return channels


def folder_scans(src: Path, channels: dict[str, Pattern], label: Pattern,
                 prefix: str) -> list[Scan]:
    """One scan per case of the first channel's pattern (label when its file exists)."""
    fields = next(iter(channels.values())).fields
    for option, pattern in [*((f"--channel {n}", p) for n, p in channels.items()),
                            ("--label", label)]:
        if pattern.fields != fields:
            raise UserError(f"{option}: pattern {pattern.text!r} must use the same fields as the "
                            f"first channel ({', '.join('{' + f + '}' for f in sorted(fields))})")
    first_name, first = next(iter(channels.items()))
    cases = first.matches(src)
    if not cases:
        raise UserError(f"{src}: no file matches --channel {first_name}={first.text}")
    scans = []
    for values in cases:
        images = {n: p.require(src, values, f"{n} channel") for n, p in channels.items()}
        mask = label.file(src, values)
        ident = "_".join(values[f] for f in ("patient", "case") if f in values)
        scans.append(Scan(f"{prefix}_{ident}", values.get("patient", values["case"]), images,
                          (mask,) if mask else (),
                          output=label.text.format(**values),
                          info={**values, "set": "train" if mask else "test"}))
    return scans


def convert_folders(src: Path, dataset_id: int, name: str, channel_specs: list[str],
                    label: str, workers: int | None = None, overwrite: bool = False) -> Path:
    """Convert any layout described by ``--channel NAME=PATTERN`` and ``--label PATTERN``.

    Case ids ``<name>_<case>`` (``<name>_<patient>_<case>`` with ``{patient}``);
    folds group cases by ``{patient}`` (else one case each). Back-conversion
    writes masks at the label pattern's path. Returns the dataset folder.
    """
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: not a folder")
    channels = parse_channels(channel_specs)
    label_pattern = Pattern(label, "--label")
    workers = check_workers(workers)
    folder = check_dataset_id(dataset_id, name, overwrite)
    scans = folder_scans(src.resolve(), channels, label_pattern, name)
    train = [s for s in scans if s.labels]
    test = [s for s in scans if not s.labels]
    description = (f"{name}: converted by mslesseg-nnunet from {src.name} with channels "
                   f"{', '.join(f'{n}={p.text}' for n, p in channels.items())} and label "
                   f"{label}.")
    return write_grouped_dataset(folder, train, test, list(channels), description, workers,
                                 overwrite, source={"dataset": "folders", "label": label,
                                                    "channels": {n: p.text for n, p in
                                                                 channels.items()}})
