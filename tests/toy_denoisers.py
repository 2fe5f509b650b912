"""Denoisers with known outputs, shared by the tests of the metrics."""
from memgen import Denoiser


class Shift(Denoiser):
    """``D(x, sigma) = x + c``: the identity for c = 0, a known constant error otherwise."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x, sigma):
        return x + self.c
