"""Naive fine-tuning: the lower bound of the comparison."""

from __future__ import annotations

from calosim.continual.strategies.plugin import PluginStrategy


class NaiveStrategy(PluginStrategy):
    """Naive fine-tuning: the lower bound, nothing protects past tasks."""

    name = "naive"
