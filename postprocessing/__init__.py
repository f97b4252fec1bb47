"""Postprocessing of lesion probabilities: pure functions on arrays plus the parameter search."""
