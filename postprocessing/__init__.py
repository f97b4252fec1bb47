"""Postprocessing of lesion probabilities: pure functions on arrays (the parameter search is in
``mslesseg_nnunet.tuning``).

- ``threshold``: probability -> mask.
- ``components``: size (voxels or mm3) and maximum-probability component filters.
- ``madseg``: the MadSeg MSL/DBL fusion rule.
- ``staple``: STAPLE consensus of binary masks (SimpleITK).
- ``params``: the parameter set and its JSON file.
- ``rules``: apply a rule and the filters to group probability maps.
"""
