"""Continual retraining across energy-period tasks.

A scenario cuts a dataset into energy tasks (scenario); one loop trains a strategy
plug-in task after task and fills the R matrix (loop, matrix, evaluation); strategies
live one per file in calosim.continual.strategies; ``train_continual_from_config`` runs
a ``continual:`` config like `calosim train` runs any other.
"""

from calosim.continual.matrix import RMatrices
from calosim.continual.scenario import ContinualTask, Scenario, energy_scenario

__all__ = ["ContinualTask", "RMatrices", "Scenario", "energy_scenario"]
