"""Reading nnU-Net probability outputs and fusing them into ensembles and submissions.

- ``npz``: channel-wise reading of nnU-Net ``.npz`` files.
- ``members``: prediction/validation/ensemble folders -> lesion probability.
- ``fusion``: streamed weighted means per rule group.
- ``folder``: ensemble folders (fused probability, mask, ``ensemble.json``).
- ``predict``: competition-style batch prediction with nnU-Net's predictor.
"""
