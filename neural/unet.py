"""A U-Net of the DDPM / IDDPM / DDPM++ family: ``net(x, noise_label, class_labels=None) -> [B, C_out, H, W]``.

Layout, for levels ``l = 0..L-1`` of widths ``base_channels * channel_mult[l]`` at resolution
``H / 2^l``:

* ``conv_in`` (3x3) to ``base_channels``;
* encoder: ``num_res_blocks`` residual blocks per level (each followed by self-attention when
  ``l in attn_levels``), then a stride-2 downsampling except at the last level; every output is kept
  as a skip connection;
* middle: residual block, self-attention, residual block;
* decoder: ``num_res_blocks + 1`` residual blocks per level, each taking one skip connection
  (concatenated on channels), attention as in the encoder, and an upsampling after each level but
  the top one;
* ``GroupNorm -> SiLU -> conv_out`` (3x3, zero-initialized).

The conditioning vector (noise embedding of width ``4 * base_channels``, plus a learned class
embedding when ``num_classes`` is set) enters every residual block. The network is a plain function
approximator; :mod:`neural.precond` turns it into a :class:`memgen.Denoiser`.
"""
from __future__ import annotations

import torch
from torch import nn

from memgen.checks import integer, non_negative

from .layers import Attention, Downsample, NoiseEmbedding, ResBlock, Upsample, group_norm


class UNet(nn.Module):
    """U-Net for images ``[B, in_channels, resolution, resolution]``.

    Args:
        in_channels, out_channels: image channels in and out (``out_channels`` defaults to ``in_channels``).
        resolution: image side; must be divisible by ``2^(len(channel_mult) - 1)``.
        base_channels: width of the first level.
        channel_mult: width multiplier of each level.
        num_res_blocks: residual blocks per encoder level (the decoder has one more).
        attn_levels: indices of the levels (0 = full resolution) that get self-attention.
        dropout: dropout probability inside the residual blocks.
        num_groups: GroupNorm groups (must divide every width).
        num_heads: attention heads.
        scale_shift: condition by scale and shift of the normalization (IDDPM) instead of by addition (DDPM).
        num_classes: number of classes for class conditioning (``None``: unconditional).
        resblock_updown: resample inside residual blocks (BigGAN-style) instead of by a strided /
            upsampling convolution.
    """

    def __init__(self, in_channels: int = 3, *, out_channels: int | None = None, resolution: int = 32,
                 base_channels: int = 128, channel_mult=(1, 2, 2, 2), num_res_blocks: int = 2,
                 attn_levels=(1,), dropout: float = 0.0, num_groups: int = 32, num_heads: int = 4,
                 scale_shift: bool = True, num_classes: int | None = None, resblock_updown: bool = False):
        super().__init__()
        in_channels = integer(in_channels, "in_channels")
        out_channels = in_channels if out_channels is None else integer(out_channels, "out_channels")
        base_channels = integer(base_channels, "base_channels")
        num_res_blocks = integer(num_res_blocks, "num_res_blocks")
        mult = tuple(integer(m, "channel_mult") for m in channel_mult)
        if not mult:
            raise ValueError("channel_mult: expected at least one level")
        attn = tuple(int(a) for a in attn_levels)
        if any(a < 0 or a >= len(mult) for a in attn):
            raise ValueError(f"attn_levels: level indices must lie in [0, {len(mult) - 1}], got {attn}")
        resolution = integer(resolution, "resolution")
        if resolution % 2 ** (len(mult) - 1):
            raise ValueError(f"resolution: {resolution} is not divisible by 2^{len(mult) - 1} ({len(mult)} levels)")
        dropout = non_negative(dropout, "dropout")
        if dropout >= 1:
            raise ValueError(f"dropout: must lie in [0, 1), got {dropout}")
        if num_classes is not None:
            num_classes = integer(num_classes, "num_classes")
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.num_classes = num_classes
        emb_dim = 4 * base_channels
        block = dict(emb_dim=emb_dim, dropout=dropout, groups=num_groups, scale_shift=scale_shift)
        self.embed = NoiseEmbedding(base_channels, emb_dim, num_classes)
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        self.down = nn.ModuleList()
        skips, ch = [base_channels], base_channels
        for level, m in enumerate(mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, base_channels * m, **block)]
                ch = base_channels * m
                if level in attn:
                    layers.append(Attention(ch, heads=num_heads, groups=num_groups))
                self.down.append(nn.ModuleList(layers))
                skips.append(ch)
            if level < len(mult) - 1:
                down = ResBlock(ch, ch, **block, resample="down") if resblock_updown else Downsample(ch)
                self.down.append(nn.ModuleList([down]))
                skips.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, **block), Attention(ch, heads=num_heads, groups=num_groups),
                                  ResBlock(ch, ch, **block)])

        self.up = nn.ModuleList()
        for level in reversed(range(len(mult))):
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), base_channels * mult[level], **block)]
                ch = base_channels * mult[level]
                if level in attn:
                    layers.append(Attention(ch, heads=num_heads, groups=num_groups))
                if level > 0 and i == num_res_blocks:
                    layers.append(ResBlock(ch, ch, **block, resample="up") if resblock_updown else Upsample(ch))
                self.up.append(nn.ModuleList(layers))

        self.norm_out = group_norm(ch, num_groups)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @staticmethod
    def _run(layers, h, emb):
        for layer in layers:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, class_labels: torch.Tensor | None = None):
        emb = self.embed(noise_label, class_labels)
        h = self.conv_in(x)
        skips = [h]
        for layers in self.down:
            h = self._run(layers, h, emb)
            skips.append(h)
        h = self._run(self.mid, h, emb)
        for layers in self.up:
            h = self._run(layers, torch.cat([h, skips.pop()], dim=1), emb)
        return self.conv_out(nn.functional.silu(self.norm_out(h)))
