"""A small U-Net for denoising 2-D images, with step and particle conditioning.

The encoder turns x_t into a set of feature maps (one per block and resolution, plus
the bottleneck) that the decoder consumes through skip connections. The two halves are
exposed separately (``encode`` / ``decode``) because joint diffusion (thesis ch. 6) reads
a classifier off the pooled encoder features and edits them before decoding.
Embeddings act on each residual block by a learned scale and shift (FiLM).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from calosim.nn.embeddings import ConditionEmbedding, TimeEmbedding


def _groups(channels: int) -> int:
    """GroupNorm groups: up to 8, dividing the channel count."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResidualBlock(nn.Module):
    """norm-SiLU-conv, FiLM by the embedding, norm-SiLU-dropout-conv, plus a skip path."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_channels) if emb_dim > 0 else None
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.norm2(self.conv1(F.silu(self.norm1(x))))
        if self.film is not None and emb is not None:
            scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1.0 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the pixels of a (low-resolution) feature map."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + attended.transpose(1, 2).reshape(b, c, h, w)


class _Stage(nn.Module):
    """Layers applied in turn; residual blocks also receive the embedding."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, emb) if isinstance(layer, ResidualBlock) else layer(x)
        return x


class _Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """U-Net on (B, in_channels, H, W) images, H and W divisible by 2^(levels - 1).

    ``channels``: width per resolution level; ``blocks``: residual blocks per level;
    ``attention``: per level, whether its blocks add self-attention (the bottleneck has
    attention when the lowest level has). ``emb_dim`` 0 means no embedding at all.
    """

    def __init__(
        self, in_channels: int, out_channels: int, channels: Sequence[int], *, blocks: int = 1,
        attention: Sequence[bool] | None = None, emb_dim: int = 0, dropout: float = 0.0,
        heads: int = 4,
    ) -> None:
        super().__init__()
        attention = tuple(attention) if attention is not None else (False,) * len(channels)
        if len(attention) != len(channels) or not channels or blocks < 1:
            raise ValueError("a U-Net needs >= 1 level, >= 1 block, one attention flag per level")

        def block(c_in: int, c_out: int, level: int) -> _Stage:
            layers: list[nn.Module] = [ResidualBlock(c_in, c_out, emb_dim, dropout)]
            if attention[level]:
                layers.append(AttentionBlock(c_out, heads))
            return _Stage(*layers)

        self.levels = len(channels)
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        skip_channels = [channels[0]]
        current = channels[0]
        self.down = nn.ModuleList()
        for level, width in enumerate(channels):
            for _ in range(blocks):
                self.down.append(block(current, width, level))
                current = width
                skip_channels.append(current)
            if level < self.levels - 1:
                self.down.append(_Stage(nn.Conv2d(current, current, 3, stride=2, padding=1)))
                skip_channels.append(current)
        self.middle = _Stage(
            ResidualBlock(current, current, emb_dim, dropout),
            *([AttentionBlock(current, heads)] if attention[-1] else []),
            ResidualBlock(current, current, emb_dim, dropout),
        )
        self.up = nn.ModuleList()
        for level in reversed(range(self.levels)):
            width = channels[level]
            for _ in range(blocks + 1):
                self.up.append(block(current + skip_channels.pop(), width, level))
                current = width
            if level > 0:
                self.up.append(_Stage(_Upsample(current)))
        self.head = nn.Sequential(
            nn.GroupNorm(_groups(current), current), nn.SiLU(),
            nn.Conv2d(current, out_channels, 3, padding=1),
        )
        # a zero output layer starts the network at "predict 0", a stable first guess
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def encode(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The encoder's feature maps: every skip tensor, then the bottleneck (last)."""
        h = self.stem(x)
        features = [h]
        for stage in self.down:
            h = stage(h, emb)
            features.append(h)
        features.append(self.middle(h, emb))
        return features

    def decode(
        self, features: Sequence[torch.Tensor], emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The output from the encoder's feature maps (as returned by ``encode``)."""
        skips = list(features[:-1])
        h = features[-1]
        for stage in self.up:
            if isinstance(stage.layers[0], _Upsample):
                h = stage(h, emb)
            else:
                h = stage(torch.cat([h, skips.pop()], dim=1), emb)
        return self.head(h)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x, emb), emb)


def pooled_features(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Average each feature map over its pixels and concatenate: (B, total channels), the
    representation z_t of thesis sec. 6.4."""
    return torch.cat([f.mean(dim=(2, 3)) for f in features], dim=1)


class ConditionalUNet(nn.Module):
    """A U-Net with its step embedding and, optionally, a particle embedding.

    ``condition_in_encoder`` False keeps the particle out of the encoder: its features
    then describe only the image (what a classifier on them should see), and the decoder
    alone is conditioned.
    """

    def __init__(
        self, channels: Sequence[int], *, blocks: int = 1, attention: Sequence[bool] | None = None,
        dropout: float = 0.0, heads: int = 4, in_channels: int = 1, out_channels: int = 1,
        n_attributes: int | None = None, condition_in_encoder: bool = True,
    ) -> None:
        super().__init__()
        emb_dim = 4 * channels[0]
        self.time_embedding = TimeEmbedding(emb_dim, channels[0])
        self.condition_embedding = (
            ConditionEmbedding(n_attributes, emb_dim) if n_attributes else None
        )
        self.condition_in_encoder = condition_in_encoder
        self.unet = UNet(in_channels, out_channels, channels, blocks=blocks, attention=attention,
                         emb_dim=emb_dim, dropout=dropout, heads=heads)

    def embed(
        self, steps: torch.Tensor, conditions: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder embedding, decoder embedding) for the steps and (optional) particles;
        ``drop`` marks rows given the null particle."""
        time = self.time_embedding(steps)
        if self.condition_embedding is None or conditions is None:
            return time, time
        both = time + self.condition_embedding(conditions, drop)
        return (both if self.condition_in_encoder else time), both

    def encode(self, x: torch.Tensor, emb: torch.Tensor) -> list[torch.Tensor]:
        return self.unet.encode(x, emb)

    def decode(self, features: Sequence[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
        return self.unet.decode(features, emb)

    def forward(
        self, x: torch.Tensor, steps: torch.Tensor, conditions: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        encoder_emb, decoder_emb = self.embed(steps, conditions, drop)
        return self.decode(self.encode(x, encoder_emb), decoder_emb)
