"""Experiment files: recipes validate, the madseg graph is right, bad files are refused by key."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.experiment import RECIPES, build_graph, load_experiment


def _recipe(tmp_path: Path, name: str, edit=None) -> Path:
    text = RECIPES[name]
    if edit:
        text = edit(text)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def madseg(tmp_path, monkeypatch):
    """The madseg recipe next to an (empty) dataset folder, nnU-Net dirs under tmp_path."""
    for sub in ("train", "test"):
        (tmp_path / "MSLesSeg Dataset" / sub).mkdir(parents=True)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    return load_experiment(_recipe(tmp_path, "madseg"))


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_validate(tmp_path, name):
    exp = load_experiment(_recipe(tmp_path, name), check_paths=False)
    assert len(build_graph(exp)) > 10


def test_madseg_graph_has_50_trainings_with_right_dependencies(madseg, tmp_path):
    graph = build_graph(madseg)
    train = [s for s in graph if s.kind == "train"]
    assert len(train) == 50
    assert {s.argv[3] for s in train} == {"0", "1", "2", "3", "4"}
    for step in train:
        lab = step.id.split(".")[1]
        dataset = {"msl": "102", "dbl": "103"}[lab]
        assert step.argv[:3] == ("nnUNetv2_train", dataset, "3d_fullres")
        assert "--npz" in step.argv and step.array == f"train.{lab}"
        plans = step.argv[step.argv.index("-p") + 1]
        expected = f"plan.{lab}" if plans == "nnUNetPlans" else f"plan.{lab}.{plans}"
        assert step.deps == (expected,)
    resenc = [s for s in train if "nnUNetResEncUNetMPlans" in s.argv]
    assert len(resenc) == 10
    assert graph["plan.msl.nnUNetResEncUNetMPlans"].deps == ("plan.msl",)
    assert graph["plan.msl"].deps == ("relabel.msl",)
    assert graph["relabel.dbl"].deps == ("convert",)
    # Tuning and the ensemble use MadSeg's members (Default + Focal) of both labellings.
    tune_deps = set(graph["tune"].deps)
    assert len(tune_deps) == 20 and all(re.search(r"nnUNetTrainer(DiceFocal)?__nnUNetPlans", d)
                                        for d in tune_deps)
    ens = graph["ensemble"]
    members = [f"{lab}.nnUNetTrainer{t}__nnUNetPlans" for lab in ("msl", "dbl") for t in ("", "DiceFocal")]
    assert ens.deps == tuple(f"predict.{m}" for m in members) + ("tune",)
    assert ens.argv[:2] == ("mslesseg", "ensemble") and ens.argv[-2:] == (
        "--params", str(madseg.workdir / "tune" / "tuned.json"))
    inputs = ens.argv[ens.argv.index("-i") + 1:ens.argv.index("-o")]
    assert inputs == tuple(str(madseg.workdir / "predictions" / m) for m in members)
    assert ens.argv[ens.argv.index("--rule") + 1] == "madseg"
    assert all("--save-probabilities" in graph[d].argv for d in ens.deps[:-1])
    predict = graph["predict.msl.nnUNetTrainer__nnUNetPlans"].argv
    assert predict[predict.index("--models") + 1] == str(
        tmp_path / "nnUNet_results" / "Dataset102_MSLesSeg_MSL" / "nnUNetTrainer__nnUNetPlans__3d_fullres")
    assert graph["predict.dbl.nnUNetTrainerMSCSA__nnUNetPlans"].deps == tuple(
        f"train.dbl.nnUNetTrainerMSCSA__nnUNetPlans.fold{f}" for f in range(5))
    assert graph["report"].deps == ("ensemble",)
    assert graph["evaluate.ensemble"].deps == ("ensemble",)
    # Every dependency comes earlier in the graph's order.
    seen = set()
    for step in graph:
        assert set(step.deps) <= seen
        seen.add(step.id)


def test_madseg_dry_run_lists_50_trainings(tmp_path, run_cli):
    for sub in ("train", "test"):
        (tmp_path / "MSLesSeg Dataset" / sub).mkdir(parents=True)
    (tmp_path / "madseg.toml").write_text(run_cli("recipe", "madseg").stdout)
    out = run_cli("run", "madseg.toml", "--dry-run").stdout
    trainings = re.findall(r"^step (train\.\S+) \[to run\] after: (\S+)$", out, re.M)
    assert len(trainings) == 50
    assert all(dep.startswith("plan.") for _, dep in trainings)
    assert not (tmp_path / "madseg_work").exists()
    slurm = run_cli("run", "madseg.toml", "--dry-run", "--executor", "slurm").stdout
    assert slurm.count("#SBATCH --array=0-24") == 2  # one array of 5 schemes x 5 folds per labelling
    assert "#SBATCH --gres=gpu:1" in slurm and "#SBATCH --time=2-00:00:00" in slurm


def test_fusion_choices_reach_tune_and_ensemble(tmp_path):
    """STAPLE with member selection and the F1 objective go to `mslesseg tune`, which fixes
    the members for the ensemble; cv-dice weights without tuning go to `mslesseg ensemble`."""
    staple = load_experiment(_recipe(tmp_path, "msseg2", lambda t: t.replace(
        'rule = "mean"', 'rule = "staple"').replace(
        '[tuning.grid]', 'objective = "f1"\nselect_members = true\n[tuning.grid]')), check_paths=False)
    graph = build_graph(staple)
    tune = " ".join(graph["tune"].argv)
    assert "--objective f1 --select-members --rule staple" in tune and "--weights" not in tune
    assert graph["ensemble"].argv[-2:] == ("--params", str(staple.workdir / "tune" / "tuned.json"))
    untuned = load_experiment(_recipe(tmp_path, "msseg2", lambda t: re.sub(
        r"\[tuning\].*?\[ensemble\]", '[ensemble]\nweights = "cv-dice"', t, flags=re.S)),
        check_paths=False)
    ens = build_graph(untuned)["ensemble"].argv
    assert ens[-2:] == ("--weights", "cv-dice") and "--params" not in ens


BAD_FILES = [
    # (edit of the madseg recipe, key named in the message, words of the message)
    (lambda t: t.replace('"nnUNetTrainerMSCSA",', '"nnUNetTrainerMSCSA", "Foo",'),
     "[training] trainers[3]", "unknown trainer 'Foo'"),
    (lambda t: t.replace('path = "MSLesSeg Dataset"', 'path = "missing"'),
     "[source] path", "not found"),
    (lambda t: t.replace("folds = [0, 1, 2, 3, 4]", "folds = [0, 1, 7]"),
     "[training] folds[2]", "fold 7 is out of range 0..4"),
    (lambda t: t.replace("mixes = [1.0,", "mixes = [1.5,"),
     "[tuning.grid] mixes[0]", "out of range"),
    (lambda t: t.replace("mixes = ", "mixs = "),
     "[tuning.grid] mixs", "unknown grid parameter"),
    (lambda t: t.replace("volume_thresholds = [1000]", "volume_thresholds = []"),
     "[tuning.grid] volume_thresholds", "empty"),
    (lambda t: t.replace('device = "cuda"', 'device = "gpu"'),
     "[training] device", "'gpu' is not one of"),
    (lambda t: t.replace('device = "cuda"', 'device = "cuda"\ncpu_patch_size = [32, 32, 32]'),
     "[training] cpu_patch_size", "needs cpu_plans = true"),
    (lambda t: t.replace('device = "cuda"', 'device = "cuda"\ncpu_plans = true\ncpu_patch_size = [32, 0]'),
     "[training] cpu_patch_size", "must be three positive voxel counts"),
    (lambda t: t.replace('configuration = "3d_fullres"', 'configuraton = "3d_fullres"'),
     "[training] configuraton", "unknown key"),
    (lambda t: t.replace("dataset_id = 103", "dataset_id = 102"),
     "[[labellings]][1] dataset_id", "already used"),
    (lambda t: t.replace('mem = "32G"', 'mem = "lots"', 1),
     "[resources.train] mem", "not a SLURM memory size"),
    (lambda t: t.replace('plans = "nnUNetResEncUNetMPlans"', 'plans = "BigPlans"'),
     "[training] trainers[3]", "unknown plans 'BigPlans'"),
    (lambda t: t.replace('members = ["nnUNetTrainer", "nnUNetTrainerDiceFocal"]',
                         'members = ["nnUNetTrainerGIN"]'),
     "[ensemble] members[0]", "not in [training] trainers"),
    (lambda t: t.replace('kind = "dbl"', 'kind = "msl"').replace("distance2 = 4.5", ""),
     "[ensemble] rule", "exactly one msl and one dbl"),
    (lambda t: t.replace('rule = "madseg"', 'rule = "union"\nweights = "cv-dice"'),
     "[ensemble] weights", "does not weight its members"),
    (lambda t: t.replace('protocol = "mslesseg"', 'protocol = "mslesseg"\nobjective = "rank"', 1),
     "[tuning] objective", "'rank' is not one of 'dice'"),
    # The converter's --name rule (a name starting with a digit passed, then `convert` failed).
    (lambda t: t.replace('name = "MSLesSeg"', 'name = "9MS"'),
     "[source] name", "must start with a letter"),
    # Only the twins written out by name exist (any `<trainer>Short` passed, then failed to train).
    (lambda t: t.replace('"nnUNetTrainerMSCSA",', '"nnUNetTrainerMSCSA", "nnUNetTrainerNoMirroringShort",'),
     "[training] trainers[3]", "unknown trainer 'nnUNetTrainerNoMirroringShort'"),
]


@pytest.mark.parametrize("edit, key, words", BAD_FILES, ids=[b[1] for b in BAD_FILES])
def test_malformed_file_names_the_key(tmp_path, edit, key, words):
    for sub in ("train", "test"):
        (tmp_path / "MSLesSeg Dataset" / sub).mkdir(parents=True)
    path = _recipe(tmp_path, "madseg", edit)
    with pytest.raises(UserError) as err:
        load_experiment(path)
    message = str(err.value)
    assert message.startswith(f"madseg.toml: {key}: ") and words in message, message
    assert "\n" not in message


def test_malformed_file_rejected_before_any_job(tmp_path, run_cli):
    (tmp_path / "bad.toml").write_text(RECIPES["demo"].replace("folds = [0, 1]", "folds = [0, 5]"))
    proc = run_cli("run", "bad.toml", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("mslesseg run: error: bad.toml: [training] folds[1]: "
                                   "fold 5 is out of range 0..4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]
    proc = run_cli("run", "bad.toml", "--executor", "slurm", check=False)
    assert proc.returncode == 2 and "folds[1]" in proc.stderr


def test_invalid_toml_and_missing_file(tmp_path, run_cli):
    (tmp_path / "broken.toml").write_text("[experiment\nname = 1\n")
    proc = run_cli("run", "broken.toml", check=False)
    assert proc.returncode == 2 and "broken.toml: not valid TOML" in proc.stderr
    proc = run_cli("status", "absent.toml", check=False)
    assert proc.returncode == 2 and "absent.toml: cannot read experiment file" in proc.stderr


def test_dataset_id_taken_by_another_dataset_is_refused(tmp_path, run_cli):
    demo = tmp_path / "demo.toml"
    demo.write_text(RECIPES["demo"])
    (tmp_path / "nnunet" / "nnUNet_raw" / "Dataset902_SomethingElse").mkdir(parents=True)
    proc = run_cli("run", demo, check=False)
    assert proc.returncode == 2
    assert "[[labellings]][0] dataset_id: 902 is already used by" in proc.stderr
    assert not (tmp_path / "work").exists()


def test_custom_step_cycle_and_unknown_dependency(tmp_path):
    base = '[experiment]\nname = "x"\n'
    cyc = base + ('[[steps]]\nid = "a"\ncommand = ["true"]\nafter = ["b"]\n'
                  '[[steps]]\nid = "b"\ncommand = ["true"]\nafter = ["a"]\n')
    (tmp_path / "cyc.toml").write_text(cyc)
    with pytest.raises(UserError, match="dependency cycle"):
        build_graph(load_experiment(tmp_path / "cyc.toml"))
    (tmp_path / "unk.toml").write_text(base + '[[steps]]\nid = "a"\ncommand = ["true"]\nafter = ["zz"]\n')
    with pytest.raises(UserError, match="unknown step 'zz'"):
        build_graph(load_experiment(tmp_path / "unk.toml"))


def test_existing_nnunet_dataset_source(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    monkeypatch.setenv("nnUNet_raw", str(raw))
    text = ('[experiment]\nname = "x"\n[source]\nkind = "nnunet"\ndataset_id = 42\n'
            '[training]\ntrainers = ["nnUNetTrainer"]\nfolds = [0]\n[test]\n')
    (tmp_path / "x.toml").write_text(text)
    with pytest.raises(UserError, match=r"\[source\] dataset_id: dataset 42 not found in nnUNet_raw"):
        load_experiment(tmp_path / "x.toml")
    (raw / "Dataset042_Mine" / "imagesTs").mkdir(parents=True)
    (raw / "Dataset042_Mine" / "labelsTs").mkdir()
    (raw / "Dataset042_Mine" / "dataset.json").write_text("{}")
    graph = build_graph(load_experiment(tmp_path / "x.toml"))
    assert graph["plan.binary"].deps == ()
    assert graph["evaluate.binary.nnUNetTrainer__nnUNetPlans"].argv[3].endswith("Dataset042_Mine/labelsTs")
    assert "report" in graph.steps


@pytest.mark.parametrize("spacing", [0.5, 9])
def test_synthetic_spacing_range_is_synths(tmp_path, spacing):
    """[source] spacing accepts what `mslesseg synth --spacing` accepts (1-8), no more."""
    from mslesseg_nnunet.synth.options import check_spacing

    path = _recipe(tmp_path, "demo", lambda t: t.replace("spacing = 3.0", f"spacing = {spacing}"))
    with pytest.raises(UserError, match=r"\[source\] spacing: .* out of range 1.0..8.0"):
        load_experiment(path, check_paths=False)
    with pytest.raises(UserError, match="--spacing: must be between 1 and 8"):
        check_spacing(spacing)


def test_msseg2_recipe_tunes_around_the_seed_filter(tmp_path):
    """The MSSEG-2 nnU-Net team kept p > 0.2 and components > 4 mm3 at 26-connectivity."""
    tune = " ".join(build_graph(load_experiment(_recipe(tmp_path, "msseg2"), check_paths=False))["tune"].argv)
    assert "--protocol msseg2" in tune and "--connectivity 26" in tune  # sizes: mm3 for msseg2
    assert " 0.2 " in tune and "--min-sizes 0 4 8 16" in tune
