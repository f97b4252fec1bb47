"""Finding the scans of a source folder: MSLesSeg, MSSEG-2 and nnU-Net ``imagesTs`` layouts,
and the helpers the other datasets' finders share (``find_root``, ``nifti_file`` ...).

MSLesSeg (as distributed; any top folder name, spaces allowed)::

    train/P{n}/T{k}/P{n}_T{k}_{FLAIR,T1,T2,MASK}.nii.gz
    test/P{n}/P{n}_{FLAIR,T1,T2[,MASK]}.nii.gz

MSSEG-2::

    training/<id>/flair_time0{1,2}_on_middle_space.nii.gz, ground_truth[_expertK].nii.gz
    testing/<id>/flair_time0{1,2}_on_middle_space.nii.gz

nnU-Net input folder: ``{case}_{XXXX}.nii.gz``.
"""
from __future__ import annotations

import re
from pathlib import Path

from mslesseg_nnunet.dataset_conversion.cases import FILE_ENDING, NIFTI_ENDINGS, Scan
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.vocabulary import MSLESSEG_PREFIX, MSSEG2_LABELS, MSSEG2_PREFIX

MSLESSEG_MODALITIES = ("FLAIR", "T1", "T2")
MSSEG2_CHANNELS = {"time01": "flair_time01_on_middle_space.nii.gz",
                   "time02": "flair_time02_on_middle_space.nii.gz"}
_EXPERTS = tuple(f"ground_truth_expert{k}.nii.gz" for k in range(1, 5))
# The files behind each of the vocabulary's MSSEG-2 labels (consensus, expert1-4, majority).
MSSEG2_LABEL_FILES = dict(zip(MSSEG2_LABELS,
                              (("ground_truth.nii.gz",), *((f,) for f in _EXPERTS), _EXPERTS)))
MSSEG2_OUTPUT_NAME = "segmentation.nii.gz"

_PATIENT = re.compile(r"^P(\d+)$")
_TIMEPOINT = re.compile(r"^T(\d+)$")
_NNUNET_IMAGE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii\.gz$")


def parse_modalities(text: str | list[str] | None,
                     known: tuple[str, ...] = MSLESSEG_MODALITIES) -> list[str]:
    """``"FLAIR,T1"`` -> ``["FLAIR", "T1"]`` (None -> all of ``known``); raise UserError
    for unknown or repeated names."""
    if text is None:
        return list(known)
    names = [m.strip().upper() for m in (text.split(",") if isinstance(text, str) else text)]
    unknown = [m for m in names if m not in known]
    if not names or unknown or len(set(names)) != len(names):
        raise UserError(f"--modalities: need distinct names among "
                        f"{','.join(known)}, got {text!r}")
    return names


def numbered_subdirs(folder: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    """Sub-folders whose name matches ``pattern``, as (number, path), by number."""
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := pattern.match(p.name))]
    return sorted(found)


def find_root(src: Path, markers: tuple[str, ...], what: str) -> Path:
    """``src`` if it holds one of ``markers``, else its only sub-folder that does."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: not a folder")
    if any((src / m).is_dir() for m in markers):
        return src.resolve()
    inner = [p for p in src.iterdir() if p.is_dir() and any((p / m).is_dir() for m in markers)]
    if len(inner) == 1:
        return inner[0].resolve()
    raise UserError(f"{src}: not a {what} folder (no {' or '.join(m + '/' for m in markers)} "
                    "inside)")


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else raise UserError ``"<path>: missing <what>"``."""
    if not path.is_file():
        raise UserError(f"{path}: missing {what}")
    return path


def nifti_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem.nii.gz`` or ``folder/stem.nii``, whichever exists (else None)."""
    return next((p for p in (folder / f"{stem}{e}" for e in NIFTI_ENDINGS) if p.is_file()), None)


def require_nifti(folder: Path, stem: str, what: str) -> Path:
    """``nifti_file(folder, stem)``; raise UserError naming ``stem.nii[.gz]`` if neither exists."""
    found = nifti_file(folder, stem)
    if found is None:
        raise UserError(f"{folder / stem}.nii[.gz]: missing {what}")
    return found


def nifti_ending(path: Path) -> str:
    """``.nii.gz`` or ``.nii``: the ending of a NIfTI file name."""
    return next(e for e in NIFTI_ENDINGS if path.name.endswith(e))


def mslesseg_case_id(patient: int, timepoint: int | None = None) -> str:
    """``MSLesSeg_P01_T1`` for a training scan, ``MSLesSeg_P54`` for a test scan."""
    base = f"{MSLESSEG_PREFIX}_P{patient:02d}"
    return base if timepoint is None else f"{base}_T{timepoint}"


def mslesseg_train_scans(train_dir: Path, modalities: list[str],
                         require_masks: bool = True) -> list[Scan]:
    """Every ``P{n}/T{k}`` scan of an MSLesSeg training folder.

    Masks are required unless ``require_masks`` is False (then taken when present).
    """
    scans = []
    for number, pdir in numbered_subdirs(train_dir, _PATIENT):
        for tp, tdir in numbered_subdirs(pdir, _TIMEPOINT):
            stem = f"{pdir.name}_{tdir.name}"
            images = {m: require_file(tdir / f"{stem}_{m}{FILE_ENDING}", f"{m} modality")
                      for m in modalities}
            mask = tdir / f"{stem}_MASK{FILE_ENDING}"
            if require_masks:
                require_file(mask, "lesion mask")
            scans.append(Scan(mslesseg_case_id(number, tp), pdir.name, images,
                              (mask,) if mask.is_file() else (),
                              output=f"{pdir.name}/{tdir.name}/{stem}_MASK{FILE_ENDING}",
                              info={"timepoint": tdir.name, "set": "train"}))
    return scans


def mslesseg_test_scans(test_dir: Path, modalities: list[str]) -> list[Scan]:
    """Every ``P{n}`` scan of an MSLesSeg test folder; masks are all present or all absent."""
    scans = []
    for number, pdir in numbered_subdirs(test_dir, _PATIENT):
        images = {m: require_file(pdir / f"{pdir.name}_{m}{FILE_ENDING}", f"{m} modality")
                  for m in modalities}
        mask = pdir / f"{pdir.name}_MASK{FILE_ENDING}"
        scans.append(Scan(mslesseg_case_id(number), pdir.name, images,
                          (mask,) if mask.is_file() else (),
                          output=f"{pdir.name}/{pdir.name}_MASK{FILE_ENDING}",
                          info={"set": "test"}))
    with_mask = [s for s in scans if s.labels]
    if with_mask and len(with_mask) != len(scans):
        missing = next(s for s in scans if not s.labels)
        raise UserError(f"{test_dir / missing.patient}: missing lesion mask "
                        f"{missing.patient}_MASK{FILE_ENDING} while other test scans have one")
    return scans


def mslesseg_scans(src: Path, modalities: list[str]) -> tuple[list[Scan], list[Scan]]:
    """(training scans, test scans) of an MSLesSeg dataset root."""
    root = find_root(src, ("train", "test"), "MSLesSeg dataset")
    train = mslesseg_train_scans(root / "train", modalities) if (root / "train").is_dir() else []
    test = mslesseg_test_scans(root / "test", modalities) if (root / "test").is_dir() else []
    if not train:
        raise UserError(f"{root / 'train'}: no training scans (expected P{{n}}/T{{k}}/ folders)")
    return train, test


def msseg2_patient_scan(pdir: Path, label: str | None, subset: str) -> Scan:
    """One MSSEG-2 patient folder; ``label`` None means: take no ground truth."""
    images = {c: require_file(pdir / f, f"{c} FLAIR") for c, f in MSSEG2_CHANNELS.items()}
    labels: tuple[Path, ...] = ()
    if label is not None:
        labels = tuple(require_file(pdir / f, f"ground truth for --label {label}")
                       for f in MSSEG2_LABEL_FILES[label])
    return Scan(f"{MSSEG2_PREFIX}_{pdir.name}", pdir.name, images, labels,
                label_rule="majority" if label == "majority" else "single",
                output=f"{pdir.name}/{MSSEG2_OUTPUT_NAME}", info={"set": subset})


def has_ground_truth(pdir: Path) -> bool:
    """True when an MSSEG-2 patient folder holds any ground-truth file."""
    return any(pdir.glob("ground_truth*.nii.gz"))


def msseg2_patient_dirs(folder: Path) -> list[Path]:
    """Patient folders (those holding the time01 FLAIR) of an MSSEG-2 folder, by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and (p / MSSEG2_CHANNELS["time01"]).exists())


def msseg2_scans(src: Path, label: str) -> tuple[list[Scan], list[Scan]]:
    """(training scans, test scans) of an MSSEG-2 root.

    Training patients with ground truth are training scans (labelled with
    ``label``); training patients with no ground-truth file at all, and every
    ``testing/`` patient, are test scans (with labels when ``testing/`` has them).
    """
    if label not in MSSEG2_LABELS:
        raise UserError(f"--label: must be one of {', '.join(MSSEG2_LABELS)}, got {label!r}")
    root = find_root(src, ("training", "testing"), "MSSEG-2 dataset")
    train, test = [], []
    if (root / "training").is_dir():
        for pdir in msseg2_patient_dirs(root / "training"):
            if has_ground_truth(pdir):
                train.append(msseg2_patient_scan(pdir, label, "train"))
            else:
                test.append(msseg2_patient_scan(pdir, None, "test"))
    if (root / "testing").is_dir():
        for pdir in msseg2_patient_dirs(root / "testing"):
            test.append(msseg2_patient_scan(pdir, label if has_ground_truth(pdir) else None,
                                            "test"))
    if not train:
        raise UserError(f"{root / 'training'}: no training patient with ground truth")
    return train, test


def nnunet_input_scans(folder: Path, n_channels: int | None = None) -> list[Scan]:
    """Cases of an nnU-Net input folder (``{case}_{XXXX}.nii.gz``), channels 0..C-1 each."""
    channels: dict[str, dict[int, Path]] = {}
    for path in sorted(Path(folder).iterdir()):
        if m := _NNUNET_IMAGE.match(path.name):
            channels.setdefault(m.group("case"), {})[int(m.group("channel"))] = path.resolve()
    scans = []
    for case, files in sorted(channels.items()):
        expected = n_channels if n_channels is not None else len(files)
        for c in range(expected):
            require_file(Path(folder) / f"{case}_{c:04d}{FILE_ENDING}",
                         f"channel {c} of case {case}")
        if len(files) != expected:
            raise UserError(f"{folder}: case {case} has {len(files)} channels, expected {expected}")
        scans.append(Scan(case, case, {f"{c:04d}": files[c] for c in range(expected)},
                          output=f"{case}{FILE_ENDING}"))
    return scans
