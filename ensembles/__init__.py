"""Reading nnU-Net probability outputs and fusing them into ensembles and submissions.

- ``npz``: channel-wise reading of nnU-Net ``.npz`` files.
- ``members``: prediction/validation/ensemble folders -> lesion probability.
- ``fusion``: streamed weighted means (maximum, STAPLE) per rule group.
- ``folder``: ensemble folders (fused probability, mask, ``ensemble.json``).
- ``validation``: cross-validation predictions and references, loaded for tuning.
- ``blending``, ``blending_predictor``: sliding-window blending (Gaussian, average, CIB).
"""
