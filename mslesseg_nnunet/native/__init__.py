"""Native-space scans: preprocessing into the MSLesSeg space (N4, registration, brain mask)
and mapping results back onto the native FLAIR grid."""
