"""Experiments as files: TOML schema, recipes, the step graph, and local/SLURM executors."""
from mslesseg_nnunet.experiment.graph import Graph, Step, build_graph
from mslesseg_nnunet.experiment.recipes import RECIPES
from mslesseg_nnunet.experiment.loading import load_experiment
from mslesseg_nnunet.experiment.schema import Experiment

__all__ = ["Experiment", "Graph", "RECIPES", "Step", "build_graph", "load_experiment"]
