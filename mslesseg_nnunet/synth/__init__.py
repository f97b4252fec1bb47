"""Deterministic synthetic MS datasets in the real MSLesSeg and MSSEG-2 layouts.

``generate_mslesseg`` and ``generate_msseg2`` write a whole tree atomically;
anatomy comes from the MNI ICBM152 maps shipped with nilearn (no download).
"""
from mslesseg_nnunet.synth.mslesseg_tree import generate_mslesseg
from mslesseg_nnunet.synth.msseg2_tree import generate_msseg2

__all__ = ["generate_mslesseg", "generate_msseg2"]
