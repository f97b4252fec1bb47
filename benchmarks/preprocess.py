"""Seconds of ``mslesseg preprocess`` per full-size case and its parts (N4, registration,
brain mask, resampling), with the round-trip accuracy, on real scans put on the issue's
oblique, anisotropic native grid (0.9 x 0.9 x 1.5 mm, rotated 12 and -9 degrees).

Usage::

    python benchmarks/preprocess.py [--workdir DIR] [--threads 2]

Cases: the 3D-MR-MS patient07 (FLAIR + T1 + T2, CC-BY, Lesjak et al.,
Neuroinformatics 2017) with ``--dof 12`` and ``--dof 6``, and the real MSLesSeg
P39_T1 (FLAIR + T1, CC-BY-4.0, Guarnera et al., Scientific Data 2025). Prints a
Markdown row per run for ``docs/benchmarks.md``; FLAMeS reports 65 s for its
whole prediction on 8 threads. The "exact" columns are the same two measures with the
true transform (the identity: the native grid is cut from the MNI-space file) in place of
the fitted one: what a perfect registration would give.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from native_helpers import mrms_path, oblique_affine, write_native  # noqa: E402

SHAPE = (190, 230, 125)
SHARED = Path(os.environ.get("MSLESSEG_SHARED", REPO.parent / "shared"))
P39 = SHARED / "data" / "mslesseg-real" / "train" / "P39" / "T1"


def cases() -> dict[str, dict[str, Path]]:
    mrms = {c: mrms_path(SHARED, c) for c in ("FLAIR", "T1", "T2", "MASK")}
    p39 = {c: P39 / f"P39_T1_{c}.nii.gz" for c in ("FLAIR", "T1", "MASK")}
    return {"3D-MR-MS p07": mrms, "MSLesSeg P39_T1": p39}


def run_case(name: str, files: dict[str, Path], dof: int, work: Path) -> dict:
    import SimpleITK as sitk

    from mslesseg_nnunet.native.images import mni_reference, read_scan, to_array
    from mslesseg_nnunet.native.preprocess import preprocess
    from mslesseg_nnunet.native.to_native import native_volume
    from mslesseg_nnunet.synth.anatomy import template

    affine = oblique_affine()
    native = work / f"{name.replace(' ', '_')}-native"
    scales = {"FLAIR": 3.7, "T1": 0.4, "T2": 2.0}
    inputs = {c: native / f"{c}.nii.gz" for c in files if c != "MASK"}
    if not native.is_dir():
        for channel, path in inputs.items():
            write_native(files[channel], path, affine, SHAPE, scales[channel])
        write_native(files["MASK"], native / "MASK.nii.gz", affine, SHAPE, label=True)
    out = work / f"{native.name}-dof{dof}"
    start = time.perf_counter()
    provenance = preprocess(inputs, out, skull_stripped=True, dof=dof, overwrite=True)
    total = time.perf_counter() - start
    brain = template().brain
    flair = np.asarray(nib.load(out / "FLAIR.nii.gz").dataobj)
    original = np.asarray(nib.load(files["FLAIR"]).dataobj)
    corr = np.corrcoef(flair[brain], original[brain])[0, 1]
    mask = np.asarray(nib.load(files["MASK"]).dataobj, np.float32)
    ref = np.asarray(nib.load(native / "MASK.nii.gz").dataobj) > 0
    dice = _dice(native_volume(mask, out, True).data > 0, ref)
    exact = out.with_name(out.name + "-exact")
    shutil.copytree(out, exact, dirs_exist_ok=True)
    sitk.WriteTransform(sitk.AffineTransform(3), str(exact / "transforms" / "flair_to_mni.tfm"))
    flair = to_array(sitk.Resample(read_scan(inputs["FLAIR"], "FLAIR")[0], mni_reference(),
                                   sitk.AffineTransform(3), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    return {"case": name, "channels": "+".join(inputs), "dof": dof, "total": total,
            **provenance["seconds"], "corr": corr, "dice": dice,
            "exact_corr": np.corrcoef(flair[brain], original[brain])[0, 1],
            "exact_dice": _dice(native_volume(mask, exact, True).data > 0, ref)}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2, help="SimpleITK threads (default 2)")
    args = parser.parse_args()
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} SimpleITK threads, {time.strftime('%Y-%m-%d')}")
    print("| case | channels | dof | total s | N4 s | registration s | brain mask s | "
          "resampling s | FLAIR corr | to-native Dice | exact corr | exact Dice |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [("3D-MR-MS p07", 12), ("3D-MR-MS p07", 6), ("MSLesSeg P39_T1", 12)]
    all_cases = cases()
    for name, dof in runs:
        r = run_case(name, all_cases[name], dof, work)
        print(f"| {r['case']} | {r['channels']} | {r['dof']} | {r['total']:.1f} | {r['n4']:.1f} | "
              f"{r['registration']:.1f} | {r['brain_mask']:.1f} | {r['resampling']:.1f} | "
              f"{r['corr']:.3f} | {r['dice']:.3f} | {r['exact_corr']:.3f} | {r['exact_dice']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
