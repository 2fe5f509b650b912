"""Metrics and side-by-side comparisons of any denoisers, through the Denoiser contract only."""
