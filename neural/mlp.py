"""A residual score MLP for low-dimensional data: ``net(x, noise_label, class_labels=None) -> [B, *shape]``.

``h_0 = W_in x``; for each of ``depth`` blocks
``h <- h + W_2 dropout(SiLU(W_1 LayerNorm(h) + U e))``, with ``e`` the noise (and class) embedding of
:class:`neural.layers.NoiseEmbedding`; output ``W_out LayerNorm(h)`` (``W_out`` initialized at zero).
Inputs of any event shape are flattened to ``d = prod(shape)`` and the output is reshaped back.
"""
from __future__ import annotations

import torch
from torch import nn

from memgen.checks import integer, non_negative

from .layers import NoiseEmbedding


class _Block(nn.Module):
    def __init__(self, width: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(emb_dim, width)
        self.fc2 = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.dropout(nn.functional.silu(self.fc1(self.norm(h)) + self.emb(emb))))


class ResidualMLP(nn.Module):
    """Residual MLP on ``d``-dimensional inputs.

    Args:
        dim: data dimension ``d`` (the product of the event shape).
        width: hidden width.
        depth: number of residual blocks.
        emb_dim: width of the conditioning vector (default ``width``).
        dropout: dropout probability inside the blocks.
        num_classes: number of classes for class conditioning (``None``: unconditional).
    """

    def __init__(self, dim: int, *, width: int = 256, depth: int = 4, emb_dim: int | None = None,
                 dropout: float = 0.0, num_classes: int | None = None):
        super().__init__()
        self.dim = integer(dim, "dim")
        width = integer(width, "width")
        depth = integer(depth, "depth")
        emb_dim = width if emb_dim is None else integer(emb_dim, "emb_dim")
        dropout = non_negative(dropout, "dropout")
        if dropout >= 1:
            raise ValueError(f"dropout: must lie in [0, 1), got {dropout}")
        self.num_classes = None if num_classes is None else integer(num_classes, "num_classes")
        self.embed = NoiseEmbedding(emb_dim, emb_dim, self.num_classes)
        self.inp = nn.Linear(self.dim, width)
        self.blocks = nn.ModuleList([_Block(width, emb_dim, dropout) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(width)
        self.out = nn.Linear(width, self.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, class_labels: torch.Tensor | None = None):
        shape = x.shape
        emb = nn.functional.silu(self.embed(noise_label, class_labels))
        h = self.inp(x.reshape(shape[0], -1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.norm_out(h)).reshape(shape)
