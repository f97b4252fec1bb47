"""Postprocessing of lesion probabilities: pure functions on arrays plus the parameter search.

- ``threshold``: probability -> mask.
- ``components``: size (voxels or mm3) and maximum-probability component filters.
- ``madseg``: the MadSeg MSL/DBL fusion rule.
- ``staple``: STAPLE consensus of binary masks (SimpleITK).
- ``params``: the parameter set and its JSON file.
- ``rules``: apply a rule and the filters to group probability maps.
- ``search``: grid search of the parameters on cross-validation predictions, and the objectives.
- ``selection``: the subset of models whose ensemble scores best (exhaustive or greedy).
"""
