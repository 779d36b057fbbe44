"""Naive fine-tuning: the lower bound of the comparison."""

from __future__ import annotations

from calosim.continual.strategies.vae import VAEStrategy


class NaiveStrategy(VAEStrategy):
    """Naive fine-tuning: the lower bound, nothing protects past tasks."""

    name = "naive"
