"""nnU-Net trainer classes of mslesseg-nnunet.

nnU-Net finds them through ``nnUNet_extTrainer`` (see ``mslesseg env``): it adds
this folder to ``sys.path`` and imports every module in it as a top-level
module. Modules here must therefore import each other and the library with
absolute ``mslesseg_nnunet...`` imports only, and never fail on import because
an optional package is missing.
"""
