"""Build the QC report folder: metrics, figures and the HTML page."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mslesseg_nnunet.atomic import atomic_dir, check_can_write
from mslesseg_nnunet.components import LESION_CONNECTIVITY
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.evaluation.batch import columns, evaluate_pairs, summary_document
from mslesseg_nnunet.evaluation.masks import check_same_grid, read_mask
from mslesseg_nnunet.evaluation.pairing import find_flair_images, pair_cases
from mslesseg_nnunet.evaluation.report.figures import box_plots, case_figure, dice_vs_load
from mslesseg_nnunet.evaluation.report.page import render_page
from mslesseg_nnunet.atomic import write_json
from mslesseg_nnunet.evaluation.summary import write_csv
from mslesseg_nnunet.nifti import read_volume
from mslesseg_nnunet.parallel import parallel_map

RATIO_METRICS = ["dice", "tpr", "ppv", "ltpr", "lfpr"]
DISTANCE_METRICS = ["assd_mm", "hd95_mm", "avd"]


@dataclass(frozen=True)
class FigureTask:
    """One case's slice figure; ``pred`` None means an empty prediction."""

    case: str
    flair: Path
    pred: Path | None
    ref: Path


def figure_task(task: FigureTask) -> bytes:
    """Read FLAIR and masks of one case and draw its slices."""
    ref, ref_header = read_mask(task.ref)
    pred = np.zeros_like(ref) if task.pred is None else read_mask(task.pred)[0]
    flair = read_volume(task.flair)
    check_same_grid(task.flair, flair.header, task.ref, ref_header)
    return case_figure(flair.data.astype(np.float32), pred, ref, ref_header.get_best_affine(),
                       task.case)


def flair_for_cases(images: Path, cases: list[str]) -> dict[str, Path]:
    """The FLAIR image of every case; UserError listing the cases without one."""
    flairs = find_flair_images(images)
    missing = [c for c in cases if c not in flairs]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UserError(f"{images}: no FLAIR image for case(s) {shown} (expected P*_FLAIR.nii.gz, "
                        "{case}_0000.nii.gz or <id>/flair_time02_on_middle_space.nii.gz)")
    return {c: flairs[c] for c in cases}


def build_report(images: Path, pred: Path, gt: Path, out: Path, connectivity: int = LESION_CONNECTIVITY,
                 workers: int = 1, missing_as_empty: bool = False,
                 overwrite: bool = False) -> dict:
    """Evaluate PRED against GT (MSLesSeg metrics) and write ``out/index.html``,
    ``out/metrics.csv`` and ``out/summary.json``. Returns the summary."""
    check_can_write(out, overwrite)
    pairs = pair_cases(pred, gt, missing_as_empty)
    flairs = flair_for_cases(images, [case for case, _, _ in pairs])
    options = {"connectivity": connectivity}
    rows = evaluate_pairs(pairs, "mslesseg", options, workers)
    pngs = parallel_map(figure_task, [FigureTask(c, flairs[c], p, r) for c, p, r in pairs],
                        workers, "report figures")
    summary = summary_document(rows, "mslesseg", options)
    plots = {"Overlap and detection": box_plots(rows, RATIO_METRICS, ylim=(-0.02, 1.02)),
             "Distances (mm) and volume difference": box_plots(rows, DISTANCE_METRICS),
             "Dice against reference lesion load": dice_vs_load(rows)}
    intro = (f"{len(rows)} cases; predictions {pred}, references {gt}, FLAIR {images}; "
             f"mean Dice {summary['mean_dice']:.4f}; lesions at {connectivity}-connectivity."
             if summary["mean_dice"] is not None else f"{len(rows)} cases.")
    page = render_page("MS lesion segmentation QC report", intro, summary["metrics"],
                       columns("mslesseg"), rows, plots,
                       {case: png for (case, _, _), png in zip(pairs, pngs)})
    with atomic_dir(out, overwrite) as tmp:
        (tmp / "index.html").write_text(page, encoding="utf-8")
        write_csv(tmp / "metrics.csv", rows, columns("mslesseg"))
        write_json(tmp / "summary.json", summary)
    return summary
