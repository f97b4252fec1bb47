"""Converters from the challenge datasets' own layouts to nnU-Net raw format and back."""
