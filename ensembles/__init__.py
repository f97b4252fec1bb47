"""Reading nnU-Net probability outputs and fusing them into ensembles and submissions."""
