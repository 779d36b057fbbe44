"""Embeddings of the diffusion step and of the particle attributes.

Both map to vectors of one width that a denoising network adds together and feeds to
its layers. The condition embedding has a learned "null" vector that stands for "no
particle given": trained by condition dropout, it enables classifier-free guidance.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from calosim.nn.mlp import MLP


def sinusoidal_embedding(
    steps: torch.Tensor, dim: int, max_period: float = 10_000.0
) -> torch.Tensor:
    """(B,) steps -> (B, dim) sines and cosines of geometrically spaced frequencies
    (the positional encoding of Vaswani et al., as used by Ho et al. 2020)."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=steps.device) / half
    )
    angles = steps.to(torch.float32)[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        embedding = torch.cat([embedding, embedding.new_zeros(embedding.shape[0], 1)], dim=1)
    return embedding


class TimeEmbedding(nn.Module):
    """Diffusion step t -> a learned vector: sinusoidal features, then a SiLU MLP."""

    def __init__(self, dim: int, frequency_dim: int | None = None) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim or dim
        self.mlp = MLP(self.frequency_dim, (dim,), dim, activation_name="silu")

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(steps, self.frequency_dim))


class ConditionEmbedding(nn.Module):
    """Standardised particle attributes (B, n_attributes) -> (B, dim), or the learned null
    embedding for the rows where ``drop`` is True."""

    def __init__(self, n_attributes: int, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.mlp = MLP(n_attributes, (hidden or dim,), dim, activation_name="silu")
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, conditions: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.mlp(conditions)
        if drop is not None:
            embedding = torch.where(drop[:, None], self.null.to(embedding.dtype), embedding)
        return embedding

    def null_embedding(self, batch_size: int) -> torch.Tensor:
        """The "no particle" embedding repeated for a batch."""
        return self.null[None, :].expand(batch_size, -1)
