"""Ready-made experiment files: ``mslesseg recipe madseg|msseg2|msseg2-cib|demo|crossdataset``.

Each recipe is a commented TOML text that validates against the schema
(``loading.load_experiment``); users edit paths and resources and run it.
"""
from __future__ import annotations

_PROB_THRESHOLDS = ", ".join(f"{0.5 + 0.05 * i:.2f}" for i in range(11))

# SLURM resources shared by the full-size recipes (one GPU per training, prediction and ensemble).
GPU_CLUSTER_RESOURCES = """\
[resources.default]
cpus = 4
mem = "16G"
time = "04:00:00"

[resources.train]
gpus = 1
cpus = 8
mem = "32G"
time = "2-00:00:00"

[resources.predict]
gpus = 1
cpus = 8
mem = "32G"
time = "08:00:00"

[resources.ensemble]               # fuses the saved test probabilities: CPU only
cpus = 4
mem = "16G"
time = "02:00:00"
"""

MADSEG = f"""\
# MadSeg, winner of the ICPR 2024 MSLesSeg challenge (mean test Dice 0.7146), as an experiment:
# multi-size (MSL) and distance-based (DBL) labellings x 5 training schemes x 5 folds = 50
# nnU-Net trainings, their validation probabilities, a grid search of MadSeg's fusion and
# postprocessing parameters, test predictions of every model, and the fused MSL+DBL ensemble.
# Run:  mslesseg run madseg.toml --executor slurm    (or --executor local on one GPU machine)

[experiment]
name = "madseg"
workdir = "madseg_work"            # state.json, per-step logs, predictions, report
# nnunet_root = "nnunet_data"      # nnUNet_raw/preprocessed/results under it (default: environment)

[source]
kind = "mslesseg"                  # the dataset as distributed (train/, test/)
path = "MSLesSeg Dataset"
dataset_id = 101
name = "MSLesSeg"
modalities = ["FLAIR", "T1", "T2"]
folds = "grouped"                  # patient-grouped 5 folds ("paper": the data descriptor's table)

[[labellings]]
kind = "msl"                       # small/medium/large lesions = 1/2/3
dataset_id = 102
connectivity = 6
thresholds = [100, 1000]

[[labellings]]
kind = "dbl"                       # boundary/interior = 1/2
dataset_id = 103
distance2 = 4.5

[training]
configuration = "3d_fullres"
folds = [0, 1, 2, 3, 4]
device = "cuda"
trainers = [
    "nnUNetTrainer",                                                  # Default: Dice + CE
    "nnUNetTrainerDiceFocal",                                         # Dice + Focal (gamma 2)
    "nnUNetTrainerMSCSA",                                             # cross-scale attention skips
    {{ trainer = "nnUNetTrainer", plans = "nnUNetResEncUNetMPlans" }},  # residual-encoder U-Net
    "nnUNetTrainerLightMUNet",                                        # LightM-UNet
]

[tuning]                           # on the members' cross-validation outputs
protocol = "mslesseg"              # maximise mean per-case Dice
[tuning.grid]
prob_thresholds = [{_PROB_THRESHOLDS}]
mixes = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.0]
volume_thresholds = [1000]

[ensemble]
rule = "madseg"                    # p = mix p_MSL + (1 - mix) p_DBL; large lesions from DBL
members = ["nnUNetTrainer", "nnUNetTrainerDiceFocal"]   # MadSeg averaged Default and Focal
# Every model is also predicted and evaluated alone on the test set, for comparison.

[test]                             # input and ground truth default to the source's test/ folder
protocol = "mslesseg"

""" + GPU_CLUSTER_RESOURCES

MSSEG2 = """\
# MSSEG-2 (MICCAI 2021) new-lesion segmentation with the proceedings' nnU-Net recipe:
# two input channels (time01 and time02 FLAIR), Dice + CE and Dice + Focal, 5 folds, then a
# threshold (around 0.2) and minimum lesion size tuned on the challenge's criteria (Anima
# rules: lesion F1 and Dice with new lesions, nFP and VFP without; mean rank).
# Run:  mslesseg run msseg2.toml --executor slurm

[experiment]
name = "msseg2"
workdir = "msseg2_work"

[source]
kind = "msseg2"                    # training/<id>/flair_time0{1,2}_on_middle_space.nii.gz ...
path = "MSSEG-2"
dataset_id = 201
name = "MSSEG2"
label = "consensus"

[training]
configuration = "3d_fullres"
folds = [0, 1, 2, 3, 4]
device = "cuda"
trainers = ["nnUNetTrainer", "nnUNetTrainerDiceFocal"]

[tuning]
protocol = "msseg2"                # the challenge's criteria, mean rank (objective = "f1": F1 only)
connectivity = 26                  # the MSSEG-2 nnU-Net team: p > 0.2, components > 4 mm3 at 26
[tuning.grid]
thresholds = [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]
min_sizes = [0, 4, 8, 16]          # mm3; a component is kept when strictly larger

[ensemble]
rule = "mean"

[test]                             # the testing/ folder has no ground truth: predictions only
protocol = "msseg2"

""" + GPU_CLUSTER_RESOURCES

DEMO = """\
# The whole MadSeg pipeline at CPU size, on synthetic MSLesSeg-layout scans (mslesseg demo):
# synth -> convert -> MSL + DBL relabel -> plan/preprocess -> CPU plans -> 2 short-schedule
# trainers x 2 labellings x 2 folds -> tune -> test predictions -> fused ensemble -> evaluate
# -> HTML report. Measured times and test Dice: docs/benchmarks.md.

[experiment]
name = "demo"
workdir = "work"
nnunet_root = "nnunet"             # keeps the demo's datasets apart from yours

[env]                              # for every step; [env.<step kind>] for one kind only
nnUNet_compile = "false"
nnUNet_def_n_proc = "1"            # nnU-Net's worker pools: one process (spawning more costs more)

[env.train]
MSLESSEG_SHORT_EPOCHS = "4"        # 4 x 100 iterations of the Short trainers (Adam 1e-2)
MSLESSEG_SHORT_ITERS = "100"
nnUNet_n_proc_DA = "0"             # augmentation in the training process: no worker start-up

[source]
kind = "synthetic-mslesseg"
dataset_id = 901
name = "DemoMSLesSeg"
patients = 8
test_patients = 3
spacing = 3.0
seed = 1
modalities = ["FLAIR", "T1"]       # what every real scan has (benchmarks/real_scans.py)

[[labellings]]
kind = "msl"
dataset_id = 902
name = "DemoMSLesSeg_MSL"
thresholds = [4, 37]               # MadSeg's 100 and 1000 mm3 in 3 mm (27 mm3) voxels

[[labellings]]
kind = "dbl"
dataset_id = 903
name = "DemoMSLesSeg_DBL"

[training]
configuration = "3d_fullres"
folds = [0, 1]
device = "cpu"
cpu_plans = true
cpu_patch_size = [32, 32, 32]      # 4x fewer voxels than the default CPU patch: ~0.1 s per iteration
preprocess_workers = 1
trainers = ["nnUNetTrainerShort", "nnUNetTrainerDiceFocalShort"]

[tuning]
protocol = "mslesseg"
[tuning.grid]
prob_thresholds = [0.5, 0.6, 0.7]  # few validation cases: a coarse grid around MadSeg's default 0.7
mixes = [1.0, 0.75, 0.5, 0.25, 0.0]
volume_thresholds = [37]           # MadSeg's 1000 mm3 in 3 mm voxels

[ensemble]
rule = "madseg"

[test]
protocol = "mslesseg"
report = true
tta = false                        # no mirroring at test time: 8x fewer network passes on CPU
workers = 0                        # nnU-Net pre/postprocessing in the predicting process
"""


def _edited(text: str, edits: list[tuple[str, str]]) -> str:
    """``text`` with each (old, new) replaced; every ``old`` must occur exactly once."""
    for old, new in edits:
        if text.count(old) != 1:
            raise ValueError(f"recipe edit {old!r}: found {text.count(old)} times")
        text = text.replace(old, new)
    return text


MSSEG2_CIB = _edited(MSSEG2, [
    ("# MSSEG-2 (MICCAI 2021) new-lesion segmentation with the proceedings' nnU-Net recipe:",
     "# MSSEG-2 new-lesion segmentation with Calibrated Inter-patch Blending (Ye, Dao et al.,\n"
     "# MICCAI 2025; docs/cib.md): the msseg2 recipe with CIB trainers (Dice-predicting heads)\n"
     "# and test windows blended by the grid head's predicted Dice. The msseg2 recipe:"),
    ("mslesseg run msseg2.toml", "mslesseg run msseg2-cib.toml"),
    ('name = "msseg2"', 'name = "msseg2-cib"'),
    ('workdir = "msseg2_work"', 'workdir = "msseg2_cib_work"'),
    ('trainers = ["nnUNetTrainer", "nnUNetTrainerDiceFocal"]',
     'trainers = ["nnUNetTrainerCIB", "nnUNetTrainerCIBDiceFocal"]'),
    ("predictions only\nprotocol = \"msseg2\"\n",
     "predictions only\nprotocol = \"msseg2\"\n"
     "blending = \"cib-grid\"                # the CIB models' default; \"gaussian\" for nnU-Net's own\n"),
])


CROSSDATASET = """\
# Cross-dataset generalisation as in seed 002 (Tables 2 and 4: UNet++ on FLAIR, trained on
# each public dataset alone and on merged ones, tested on the others). Every model is tested
# on every test set, each with its own reference and protocol; the result is a matrix of mean
# Dice and IoU (rows: training set, columns: test set) in WORKDIR/matrix/matrix.csv and
# WORKDIR/matrix/index.html, printed by `mslesseg run` and `mslesseg status`.
# Run:  mslesseg run crossdataset.toml --executor slurm

[experiment]
name = "crossdataset"
workdir = "crossdataset_work"

[[sources]]                        # each source becomes its own nnU-Net dataset
key = "MSSEG2016"                  # its name in the matrix
kind = "msseg2016"                 # `mslesseg convert msseg2016 PATH ...` (public 2021 release)
path = "MSSEG-2016"
dataset_id = 121
name = "MSSEG2016"
convert_args = ["--modalities", "FLAIR"]   # the paper trains on FLAIR only; Training/ -> imagesTr,
                                           # Testing/ -> imagesTs + labelsTs
# quantile_normalise = ["FLAIR"]   # seed 002's quantile normalisation (docs/normalisation.md);
                                   # set it in every source to train and test as the paper did

[[sources]]
key = "ISBI2015"
kind = "isbi2015"
path = "ISBI2015"
dataset_id = 122
name = "ISBI2015"
convert_args = ["--modalities", "FLAIR", "--label", "union"]   # seed 002 trains on the raters' union

[[sources]]
key = "3DMRMS"
kind = "3dmrms"
path = "3D-MR-MS"
dataset_id = 123
name = "MRMS3D"
convert_args = ["--modalities", "FLAIR"]

# [[sources]]                      # any other binary nnU-Net dataset already in nnUNet_raw
# key = "Mine"
# kind = "nnunet"
# dataset_id = 140

[[training_sets]]                  # matrix rows (default: every source alone)
sources = ["MSSEG2016"]
[[training_sets]]
sources = ["ISBI2015"]
[[training_sets]]
sources = ["3DMRMS"]
[[training_sets]]                  # several sources: one merged dataset (`mslesseg merge`: images
key = "MSSEG2016+ISBI2015+3DMRMS"  # linked, case ids prefixed, channels matched by name);
sources = ["MSSEG2016", "ISBI2015", "3DMRMS"]   # the default key joins the source keys by "+"
dataset_id = 130
name = "MSSEG2016_ISBI2015_MRMS3D"
channels = ["FLAIR"]               # channels every source has (default: the first source's)

[training]
configuration = "3d_fullres"       # seed 002 used 2D slices: "2d" (or a UNet++ trainer) for that
folds = [0, 1, 2, 3, 4]
device = "cuda"
trainers = ["nnUNetTrainer"]       # several trainers: one row per training set and trainer

[[tests]]                          # matrix columns
key = "MSSEG2016-test"
source = "MSSEG2016"               # its imagesTs/labelsTs (Testing/), mslesseg protocol (Dice)
[[tests]]
key = "MSSEG2016-train"
source = "MSSEG2016"
part = "train"                     # its training cases (imagesTr/labelsTr): only for models that
[[tests]]                          # did not train on them
key = "3DMRMS"
source = "3DMRMS"
part = "train"
[[tests]]
key = "ISBI2015"
source = "ISBI2015"
part = "train"                     # the ISBI test scans have no public masks
# [[tests]]                        # any other folder with its own reference and protocol:
# key = "Clinic"
# input = "clinic/images"          # MSLesSeg, MSSEG-2 or nnU-Net input layout
# gt = "clinic/masks"
# protocol = "msseg2"              # animaSegPerfAnalyzer's rules (default "mslesseg")

""" + GPU_CLUSTER_RESOURCES

RECIPES = {"madseg": MADSEG, "msseg2": MSSEG2, "msseg2-cib": MSSEG2_CIB, "demo": DEMO,
           "crossdataset": CROSSDATASET}
