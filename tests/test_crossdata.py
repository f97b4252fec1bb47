"""Cross-dataset experiments: the new keys, their graph, bad files, and one real CPU run."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from eval_helpers import blobs, write_mask
from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.evaluation.batch import columns, evaluate_folders
from mslesseg_nnunet.evaluation.summary import write_csv
from mslesseg_nnunet.experiment import build_graph, load_experiment
from mslesseg_nnunet.experiment.preflight import check_dataset_ids

# Two synthetic MSLesSeg-layout datasets (other seeds, spacings and channel orders), trained
# alone (A) and merged (A+B), each model tested on both test sets: a 2 x 2 matrix.
CROSS = """\
[experiment]
name = "cross"
workdir = "work"
nnunet_root = "nnunet"

[env]
nnUNet_compile = "false"
nnUNet_def_n_proc = "1"

[env.train]
MSLESSEG_SHORT_EPOCHS = "1"
MSLESSEG_SHORT_ITERS = "3"
nnUNet_n_proc_DA = "0"

[[sources]]
key = "A"
kind = "synthetic-mslesseg"
dataset_id = 911
name = "SynthA"
patients = 2
test_patients = 1
spacing = 4.0
seed = 1
modalities = ["FLAIR", "T2"]
workers = 1

[[sources]]
key = "B"
kind = "synthetic-mslesseg"
dataset_id = 912
name = "SynthB"
patients = 2
test_patients = 1
spacing = 5.0
seed = 2
modalities = ["T2", "FLAIR"]
workers = 1

[[training_sets]]
sources = ["A"]

[[training_sets]]
sources = ["A", "B"]
dataset_id = 913

[training]
folds = [0]
device = "cpu"
cpu_plans = true
cpu_patch_size = [32, 32, 32]
preprocess_workers = 1
trainers = ["nnUNetTrainerShort"]

[[tests]]
source = "A"
tta = false
workers = 0

[[tests]]
source = "B"
tta = false
workers = 0
"""
MODEL = "nnUNetTrainerShort__nnUNetPlans"


def _write(tmp_path: Path, text: str = CROSS) -> Path:
    path = tmp_path / "cross.toml"
    path.write_text(text)
    return path


def test_cross_graph_merges_trains_and_fills_the_matrix(tmp_path):
    exp = load_experiment(_write(tmp_path))
    assert [s.key for s in exp.sources] == ["A", "B"]
    assert exp.sources[1].path == tmp_path / "work" / "synthetic" / "B"
    assert [(lab.key, lab.kind, lab.dataset_id, lab.name) for lab in exp.labellings] == [
        ("A", "binary", 911, "SynthA"), ("A+B", "merge", 913, "SynthA_SynthB")]
    graph = build_graph(exp)
    assert graph["convert.B"].deps == ("synth.B",)
    assert graph["merge.A+B"].argv == ("mslesseg", "merge", "--sources", "911", "912",
                                       "--dataset-id", "913", "--name", "SynthA_SynthB",
                                       "--overwrite")
    assert graph["merge.A+B"].deps == ("convert.A", "convert.B")
    assert graph["plan.A"].deps == ("convert.A",) and graph["plan.A+B"].deps == ("merge.A+B",)
    assert graph[f"train.A+B.{MODEL}.fold0"].argv[:4] == ("nnUNetv2_train", "913", "3d_fullres", "0")
    predict = graph[f"predict.A+B.{MODEL}.B"]
    assert predict.deps == (f"train.A+B.{MODEL}.fold0", "convert.B")
    assert predict.argv[predict.argv.index("-i") + 1] == str(tmp_path / "work/synthetic/B/test")
    evaluate = graph[f"evaluate.A+B.{MODEL}.B"].argv
    assert evaluate[3] == str(tmp_path / "work/synthetic/B/test") and "mslesseg" in evaluate
    matrix = graph["matrix"]
    cells = [matrix.argv[i + 1:i + 4] for i, a in enumerate(matrix.argv) if a == "--cell"]
    assert [c[:2] for c in cells] == [("A", "A"), ("A", "B"), ("A+B", "A"), ("A+B", "B")]
    assert cells[3][2] == str(tmp_path / f"work/evaluation/A+B.{MODEL}.B/metrics.csv")
    assert len(graph) == 20 and not exp.test


def test_training_sets_default_to_every_source_alone_and_tests_take_folders(tmp_path):
    (tmp_path / "clinic" / "img").mkdir(parents=True)
    (tmp_path / "clinic" / "ref").mkdir()
    text = re.sub(r"\[\[training_sets\]\].*?(?=\[training\])", "", CROSS, flags=re.S)
    text = text.replace('trainers = ["nnUNetTrainerShort"]',
                        'trainers = ["nnUNetTrainerShort", "nnUNetTrainerDiceFocalShort"]')
    text += ('[[tests]]\nkey = "clinic"\ninput = "clinic/img"\ngt = "clinic/ref"\n'
             'protocol = "msseg2"\n')
    exp = load_experiment(_write(tmp_path, text))
    assert [lab.key for lab in exp.labellings] == ["A", "B"]
    clinic = exp.tests[2]
    assert (clinic.key, clinic.input, clinic.gt, clinic.protocol, clinic.source) == (
        "clinic", tmp_path / "clinic/img", tmp_path / "clinic/ref", "msseg2", None)
    graph = build_graph(exp)
    assert "merge" not in " ".join(graph.steps)
    assert graph[f"predict.B.{MODEL}.clinic"].deps == (f"train.B.{MODEL}.fold0",)
    cells = [a for a in graph["matrix"].argv if a.startswith(("A/", "B/"))]
    assert len(cells) == 2 * 2 * 3 and "B/nnUNetTrainerDiceFocalShort__nnUNetPlans" in cells


def test_dataset_ids_of_sources_and_merges_taken_by_others_are_refused(tmp_path):
    exp = load_experiment(_write(tmp_path))
    check_dataset_ids(exp)
    (tmp_path / "nnunet" / "nnUNet_raw" / "Dataset913_Other").mkdir(parents=True)
    with pytest.raises(UserError, match=r"\[\[training_sets\]\] 'A\+B' dataset_id: 913 is already"):
        check_dataset_ids(exp)


BAD = [
    # (edit of CROSS, key named in the message, words of the message)
    (lambda t: t.replace('sources = ["A", "B"]', 'sources = ["A", "C"]'),
     "[[training_sets]][1] sources[1]", "unknown source 'C' (known: A, B)"),
    (lambda t: t.replace('sources = ["A", "B"]', 'sources = ["A", "A"]'),
     "[[training_sets]][1] sources[1]", "'A' listed twice"),
    (lambda t: t.replace("dataset_id = 913", "dataset_id = 912"),
     "[[training_sets]][1] dataset_id", "already used by a source"),
    (lambda t: t.replace("dataset_id = 913\n", ""),
     "[[training_sets]][1] dataset_id", "missing (required)"),
    (lambda t: t.replace("dataset_id = 912", "dataset_id = 911"),
     "[[sources]][1] dataset_id", "911 is already used by source 'A'"),
    (lambda t: t.replace('key = "B"', 'key = "A"'),
     "[[sources]][1] key", "'A' is already used by another source"),
    (lambda t: t.replace('key = "B"', 'key = "B C"'),
     "[[sources]][1] key", "must be letters, digits"),
    (lambda t: t.replace('kind = "synthetic-mslesseg"', 'kind = "isbi"', 1),
     "[[sources]][0] kind", "'isbi' is not one of"),
    (lambda t: t.replace('source = "B"', 'source = "Z"'),
     "[[tests]][1] source", "unknown source 'Z'"),
    (lambda t: t.replace('source = "B"', 'input = "elsewhere"'),
     "[[tests]][1] key", "missing (required)"),
    (lambda t: t.replace('source = "B"', 'key = "X"\ninput = "elsewhere"'),
     "[[tests]][1] gt", "required (the matrix scores"),
    (lambda t: t.replace('source = "B"', 'source = "A"'),
     "[[tests]][1] key", "'A' is already used by another test set"),
    (lambda t: t.replace('source = "B"', 'source = "B"\nprotocol = "dice"'),
     "[[tests]][1] protocol", "'dice' is not one of"),
    (lambda t: t.replace('source = "B"', 'source = "B"\nreport = true'),
     "[[tests]][1] report", "unknown key"),
    (lambda t: t + '[source]\nkind = "nnunet"\ndataset_id = 5\n',
     "sources", "use either [source] or [[sources]]"),
    (lambda t: t + '[tuning]\nprotocol = "mslesseg"\n',
     "tuning", "not available in a cross-dataset experiment"),
    (lambda t: t + '[test]\n', "test", "(use [[tests]])"),
    (lambda t: t.replace("[[sources]]", "[[datasets]]"),
     "training_sets", "needs [[sources]]"),
]


@pytest.mark.parametrize("edit, key, words", BAD, ids=[f"{b[1]}:{b[2][:12]}" for b in BAD])
def test_malformed_cross_file_names_the_key(tmp_path, edit, key, words):
    with pytest.raises(UserError) as err:
        load_experiment(_write(tmp_path, edit(CROSS)))
    message = str(err.value)
    assert message.startswith(f"cross.toml: {key}: ") and words in message, message
    assert "\n" not in message


def test_dry_run_names_the_key_and_recipe_validates(tmp_path, run_cli):
    _write(tmp_path, CROSS.replace('sources = ["A", "B"]', 'sources = ["A", "C"]'))
    proc = run_cli("run", "cross.toml", "--dry-run", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("mslesseg run: error: cross.toml: [[training_sets]][1] "
                                   "sources[1]: unknown source 'C' (known: A, B)")
    recipe = run_cli("recipe", "crossdataset").stdout
    exp = load_experiment(_write(tmp_path, recipe), check_paths=False)
    assert [lab.key for lab in exp.labellings] == ["MSSEG2016", "ISBI2015", "3DMRMS",
                                                   "MSSEG2016+ISBI2015+3DMRMS"]
    assert [t.key for t in exp.tests] == ["MSSEG2016-test", "MSSEG2016-train", "3DMRMS", "ISBI2015"]
    # Converter kinds take their own options; a test set may be a source's training part.
    graph = build_graph(exp)
    assert graph["convert.ISBI2015"].argv[2:4] == ("isbi2015", str(tmp_path / "ISBI2015"))
    assert graph["convert.ISBI2015"].argv[-4:] == ("--modalities", "FLAIR", "--label", "union")
    raw = Path(exp.nnunet_dirs()["nnUNet_raw"])
    # A converted dataset's imagesTr is predicted through a link, so that masks keep the case ids
    # of its labelsTr (from imagesTr itself, `predict` writes them in the source naming).
    link = exp.workdir / "inputs.3DMRMS"
    assert graph["inputs.3DMRMS"].argv == ("ln", "-sfn", str(raw / "Dataset123_MRMS3D/imagesTr"),
                                           str(link))
    assert graph["inputs.3DMRMS"].deps == ("convert.3DMRMS",)
    step = graph["predict.ISBI2015.nnUNetTrainer__nnUNetPlans.3DMRMS"]
    assert step.argv[3] == str(link) and step.deps[-1] == "inputs.3DMRMS"
    evaluate = graph["evaluate.ISBI2015.nnUNetTrainer__nnUNetPlans.MSSEG2016-test"].argv
    assert evaluate[3] == str(raw / "Dataset121_MSSEG2016" / "labelsTs")


def numpy_scores(pred_dir: Path, gt_dir: Path) -> tuple[float, float, int]:
    """Mean per-case Dice and IoU of the saved masks (paired by MSLesSeg test file name) over
    the cases where they are defined, and the number of cases."""
    dice, iou = [], []
    cases = sorted(gt_dir.glob("P*/P*_MASK.nii.gz"))
    for ref_path in cases:
        pred = np.asarray(nib.load(pred_dir / ref_path.relative_to(gt_dir)).dataobj) > 0
        ref = np.asarray(nib.load(ref_path).dataobj) > 0
        tp, fp, fn = (pred & ref).sum(), (pred & ~ref).sum(), (~pred & ref).sum()
        if tp + fp + fn:
            dice.append(2 * tp / (2 * tp + fp + fn))
            iou.append(tp / (tp + fp + fn))
    return float(np.mean(dice)), float(np.mean(iou)), len(cases)


def test_matrix_command_matches_numpy_on_hand_made_masks(tmp_path, run_cli):
    """Two rows x two columns of `mslesseg evaluate` tables, each column its own protocol;
    a case with both masks empty has no Dice and stays out of the mean."""
    rng = np.random.default_rng(7)
    refs = {"P1": blobs((20, 20, 20), [(6, 6, 6), (14, 13, 12)], 3),
            "P2": blobs((20, 20, 20), [(10, 10, 10)], 4), "P3": np.zeros((20, 20, 20), bool)}
    for test in ("X", "Y"):
        for case, ref in refs.items():
            write_mask(tmp_path / "gt" / test / case / f"{case}_MASK.nii.gz", ref, (2.0, 2.0, 2.0))
    args = []
    for row in ("R1", "R2"):
        for test, protocol in (("X", "mslesseg"), ("Y", "msseg2")):
            for case, ref in refs.items():
                missed = case == "P3" or (case == "P2" and row == "R2")
                pred = np.zeros_like(ref) if missed else ref ^ (rng.random(ref.shape) > 0.97)
                write_mask(tmp_path / "pred" / row / test / case / f"{case}_MASK.nii.gz", pred,
                           (2.0, 2.0, 2.0))
            csv_path = tmp_path / "eval" / f"{row}_{test}.csv"
            scores = evaluate_folders(tmp_path / "pred" / row / test, tmp_path / "gt" / test,
                                      protocol, progress=False)
            write_csv(csv_path, scores, columns(protocol))
            args += ["--cell", row, test, csv_path]
    out = run_cli("matrix", *args, "-o", tmp_path / "matrix").stdout
    assert out.startswith("Dice:\n  trained on \\ tested on")
    with open(tmp_path / "matrix" / "matrix.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    for row in rows:
        pred_dir = tmp_path / "pred" / row["training_set"] / row["test_set"]
        dice, iou, n = numpy_scores(pred_dir, tmp_path / "gt" / row["test_set"])
        assert (int(row["n_cases"]), n) == (2, 3)
        assert float(row["dice"]) == pytest.approx(dice, abs=1e-12)
        assert float(row["iou"]) == pytest.approx(iou, abs=1e-12)
        assert f"{float(row['dice']):.3f}" in out
    assert float(rows[2]["iou"]) < float(rows[0]["iou"])  # R2 missed all of P2
    again = run_cli("matrix", *args, "-o", tmp_path / "matrix", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_cross_experiment_runs_on_cpu_and_its_matrix_is_right(tmp_path, run_cli):
    """The merged row only (A alone trains like any single-dataset experiment): within the
    test-time budget, one planning, one training and two test predictions."""
    _write(tmp_path, CROSS.replace('[[training_sets]]\nsources = ["A"]\n\n', "")
           .replace('MSLESSEG_SHORT_ITERS = "3"', 'MSLESSEG_SHORT_ITERS = "10"'))
    out = run_cli("run", "cross.toml", timeout=900).stdout
    assert "cross: all 13 steps finished" in out
    assert re.search(r"^Dice:\n  trained on \\ tested on +A +B\n  A\+B +[0-9.]+ +[0-9.]+\n"
                     r"IoU:\n", out, re.M), out
    work = tmp_path / "work"
    merged = tmp_path / "nnunet/nnUNet_raw/Dataset913_SynthA_SynthB"
    assert len(list((merged / "labelsTr").iterdir())) == 4
    with open(work / "matrix" / "matrix.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["training_set"], r["test_set"]) for r in rows] == [("A+B", "A"), ("A+B", "B")]
    for row in rows:
        pred = work / "predictions" / f"{row['training_set']}.{MODEL}" / row["test_set"]
        dice, iou, n = numpy_scores(pred, work / "synthetic" / row["test_set"] / "test")
        assert int(row["n_cases"]) == n == 1
        assert float(row["dice"]) == pytest.approx(dice, abs=1e-12)
        assert float(row["iou"]) == pytest.approx(iou, abs=1e-12)
    page = (work / "matrix" / "index.html").read_text()
    iou_table = page.split("<h2>IoU</h2>")[1].split("</table>")[0]
    assert "<th>A</th><th>B</th>" in iou_table and "<td>A+B</td>" in iou_table
    status = run_cli("status", "cross.toml").stdout
    assert "IoU:" in status and "cross: 13 done" in status
