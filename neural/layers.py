"""Building blocks of the networks: noise embedding, residual blocks, self-attention, resampling.

* Noise embedding (sinusoidal): for a scalar noise label ``c`` and ``k = 0..h-1`` (``h = dim/2``),
  ``f_k = max_period^(-k/h)``, ``emb(c) = [cos(c f_0..f_{h-1}), sin(c f_0..f_{h-1})]``; an MLP
  ``Linear -> SiLU -> Linear`` then maps it to the conditioning vector of every residual block.
* Residual block: ``h = conv(act(norm(x)))``; the conditioning vector enters either additively
  (``h + W e``) or as a scale and shift of the second normalization (``norm(h) (1 + a) + b`` with
  ``[a, b] = W e``, IDDPM's ``use_scale_shift_norm``); then ``act -> dropout -> conv`` (initialized at
  zero), and the skip path is the identity or a 1x1 convolution when the width changes. With
  ``resample='down'``/``'up'`` (BigGAN-style, IDDPM's ``resblock_updown``) both paths are average-pooled
  / nearest-upsampled by 2 after the first normalization, so the block itself changes the resolution.
* Self-attention over the pixels of a feature map, ``softmax(Q K^T / sqrt(d_head)) V`` per head,
  after a GroupNorm, with a zero-initialized output projection and a residual connection.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def noise_features(c: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features ``[cos(c f_k), sin(c f_k)]``, ``f_k = max_period^(-k/(dim/2))``: ``[B] -> [B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=c.device) / half)
    arg = c.float()[:, None] * freqs[None]
    return torch.cat([arg.cos(), arg.sin()], dim=1)


class NoiseEmbedding(nn.Module):
    """Noise label (and optional class label) -> conditioning vector ``[B, emb_dim]``.

    ``emb = MLP(noise_features(c)) + E[label]``: the class embedding is added to the noise embedding.
    """

    def __init__(self, feature_dim: int, emb_dim: int, num_classes: int | None = None):
        super().__init__()
        self.feature_dim = feature_dim
        self.mlp = nn.Sequential(nn.Linear(feature_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(num_classes, emb_dim) if num_classes else None

    def forward(self, noise_label: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.mlp(noise_features(noise_label, self.feature_dim).to(self.mlp[0].weight.dtype))
        if self.label is not None:
            if class_labels is None:
                raise ValueError("class_labels: this network is class-conditional; pass one label per sample")
            emb = emb + self.label(class_labels.long())
        return emb


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with ``groups`` groups (``channels`` must be divisible by it)."""
    if channels % groups:
        raise ValueError(f"num_groups: {groups} does not divide the channel count {channels}")
    return nn.GroupNorm(groups, channels, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block conditioned on the embedding vector (see the module docstring)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, *, dropout: float = 0.0, groups: int = 32,
                 scale_shift: bool = True, resample: str | None = None):
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample: expected None, 'down' or 'up', got {resample!r}")
        self.scale_shift = scale_shift
        self.resample = resample
        self.norm1 = group_norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout if scale_shift else cout)
        self.norm2 = group_norm(cout, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        if self.resample is not None:
            h, x = _resample(h, self.resample), _resample(x, self.resample)
        h = self.conv1(h)
        e = self.emb(F.silu(emb))[:, :, None, None].to(h.dtype)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


def _resample(x: torch.Tensor, how: str) -> torch.Tensor:
    return F.avg_pool2d(x, 2) if how == "down" else F.interpolate(x, scale_factor=2.0, mode="nearest")


class Attention(nn.Module):
    """Multi-head self-attention over the ``H*W`` positions of a ``[B, C, H, W]`` map, with a residual."""

    def __init__(self, channels: int, *, heads: int = 4, groups: int = 32):
        super().__init__()
        if channels % heads:
            raise ValueError(f"num_heads: {heads} does not divide the channel count {channels}")
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        q, k, v = qkv.reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h * w)).reshape(b, c, h, w)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_resample(x, "up"))
