"""Challenge-exact evaluation: MSLesSeg metrics, MSSEG-2 (Anima) lesion detection,
lesion reports and the visual QC report."""
