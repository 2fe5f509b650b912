"""Neural denoisers: networks, preconditioning into the Denoiser contract, training."""
