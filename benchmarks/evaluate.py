"""Speed of the full MSLesSeg metric set against lesion-metrics, MedPy, panoptica
and nnU-Net's compute_metrics, on the same 182x218x182 pairs, in one run.

Pairs: the two real MSLesSeg references (P18_T1, P39_T1; CC-BY-4.0, see
shared/data/mslesseg-real/README.md) each against three perturbed predictions
(eroded + shifted, dilated + a dropped lesion, shifted + a false-positive blob).
Every tool is timed on every pair ``--repeats`` times (the minimum is kept, to
damp noise from other processes); the table gives the median over pairs and
the ratio to ours. The peers are not dependencies of this project:

    /work/venv/bin/pip install lesion-metrics panoptica
    python benchmarks/evaluate.py [--repeats 3] [--shared ../shared]

Values are cross-checked: ours must equal lesion-metrics (Dice, PPV, TPR,
LTPR, LFDR, AVD; both use 26-connected lesions and a >= 1 voxel hit) and
MedPy (ASSD, HD95) on every pair.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from mslesseg_nnunet.evaluation.batch import CaseTask, score_task
from mslesseg_nnunet.evaluation.masks import read_mask
from mslesseg_nnunet.evaluation.mslesseg_metrics import score_case
from mslesseg_nnunet.nifti import read_volume, write_volume


def make_pairs(shared: Path, folder: Path) -> list[tuple[Path, Path]]:
    """Write three perturbed predictions per real reference; return (pred, ref) paths."""
    pairs = []
    rng = np.random.default_rng(0)
    for patient in ("P18", "P39"):
        ref_path = shared / "data" / "mslesseg-real" / "train" / patient / "T1" / \
            f"{patient}_T1_MASK.nii.gz"
        vol = read_volume(ref_path)
        ref = vol.data > 0
        labels, n = ndimage.label(ref)
        blob = np.zeros_like(ref)
        c = np.array(ref.shape) // 2 + rng.integers(-20, 20, size=3)
        blob[c[0]:c[0] + 6, c[1]:c[1] + 5, c[2]:c[2] + 4] = True
        preds = [np.roll(ndimage.binary_erosion(ref), 1, axis=0) | (ref & (labels == 1)),
                 ndimage.binary_dilation(ref) & (labels != n),
                 np.roll(ref, 2, axis=1) | blob]
        for k, pred in enumerate(preds):
            path = folder / f"{patient}_pred{k}.nii.gz"
            write_volume(path, pred.astype(np.uint8), vol.header, dtype=np.uint8)
            pairs.append((path, ref_path))
    return pairs


def ours(pred, ref, spacing):
    return score_case(pred, ref, spacing)


def lesion_metrics_all(pred, ref, spacing):
    import lesion_metrics.metrics as lm
    return {"dice": lm.dice(pred, ref), "ppv": lm.ppv(pred, ref), "tpr": lm.tpr(pred, ref),
            "ltpr": lm.ltpr(pred, ref), "lfpr": lm.lfdr(pred, ref), "avd": lm.avd(pred, ref)}


def medpy_hd95(pred, ref, spacing):
    from medpy.metric.binary import hd95
    return {"hd95_mm": hd95(pred, ref, spacing)}


def medpy_assd(pred, ref, spacing):
    from medpy.metric.binary import assd
    return {"assd_mm": assd(pred, ref, spacing)}


def panoptica_default(pred, ref, spacing):
    from panoptica import (ConnectedComponentsInstanceApproximator, InputType,
                           NaiveThresholdMatching, Panoptica_Evaluator)
    evaluator = Panoptica_Evaluator(expected_input=InputType.SEMANTIC,
                                    instance_approximator=ConnectedComponentsInstanceApproximator(),
                                    instance_matcher=NaiveThresholdMatching(), verbose=False)
    return evaluator.evaluate(pred.astype(np.uint8), ref.astype(np.uint8), verbose=False)


def timed(fn, *args, repeats: int):
    """(result of the last call, minimum wall time over ``repeats`` calls)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return result, best


def nnunet_compute_metrics(pred_path: Path, ref_path: Path):
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    return compute_metrics(str(ref_path), str(pred_path), SimpleITKIO(), [1])


def check_agreement(row: dict, peers: dict) -> None:
    for key, value in peers.items():
        assert abs(row[key] - float(value)) < 1e-6, (key, row[key], value)


def run(shared: Path, repeats: int) -> tuple[list[tuple[str, float, float]], int]:
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_pairs(shared, Path(tmp))
        times: dict[str, list[float]] = {}

        def add(name, seconds):
            times.setdefault(name, []).append(seconds)

        for pred_path, ref_path in pairs:
            ref, header = read_mask(ref_path)
            pred, _ = read_mask(pred_path)
            spacing = header.get_zooms()[:3]
            row, t = timed(ours, pred, ref, spacing, repeats=repeats)
            add("ours: mslesseg protocol (arrays)", t)
            task = CaseTask(pred_path.name, pred_path, ref_path, "mslesseg", {"connectivity": 26})
            add("ours: read both files + protocol", timed(score_task, task, repeats=repeats)[1])
            add("reading both files", timed(lambda: (read_mask(pred_path), read_mask(ref_path)),
                                            repeats=repeats)[1])
            lm, t = timed(lesion_metrics_all, pred, ref, spacing, repeats=repeats)
            add("lesion-metrics (dice, ppv, tpr, ltpr, lfdr, avd)", t)
            hd, t_hd = timed(medpy_hd95, pred, ref, spacing, repeats=repeats)
            add("medpy hd95", t_hd)
            asd, t_asd = timed(medpy_assd, pred, ref, spacing, repeats=repeats)
            add("medpy assd", t_asd)
            add("lesion-metrics + medpy (hd95, assd)", times["lesion-metrics (dice, ppv, tpr, "
                                                           "ltpr, lfdr, avd)"][-1] + t_hd + t_asd)
            add("panoptica (semantic, CC + naive matching)",
                timed(panoptica_default, pred, ref, spacing, repeats=repeats)[1])
            add("nnU-Net compute_metrics (reads files itself)",
                timed(nnunet_compute_metrics, pred_path, ref_path, repeats=repeats)[1])
            check_agreement(row, {**lm, **hd, **asd})
    base = statistics.median(times["ours: mslesseg protocol (arrays)"])
    return [(name, statistics.median(ts), statistics.median(ts) / base)
            for name, ts in times.items()], len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("MSLESSEG_SHARED",
                                                    Path(__file__).resolve().parents[2] / "shared")))
    args = parser.parse_args()
    results, n_pairs = run(args.shared, args.repeats)
    print(f"{n_pairs} pairs of 182x218x182 masks, min of {args.repeats} runs per pair, "
          f"median over pairs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| tool | median s/case | x ours |")
    print("|---|---|---|")
    for name, seconds, ratio in results:
        print(f"| {name} | {seconds:.3f} | {ratio:.1f} |")


if __name__ == "__main__":
    main()
