"""mslesseg-nnunet: nnU-Net v2 extension for MS lesion segmentation challenges."""

__version__ = "0.1.0"
