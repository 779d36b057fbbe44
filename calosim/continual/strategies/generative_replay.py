"""Generative replay (Shin et al. 2017) of a conditional VAE."""

from __future__ import annotations

import torch

from calosim.continual.strategies.base import TaskData
from calosim.continual.strategies.vae import ReplayStrategy


class GenerativeReplayStrategy(ReplayStrategy):
    """Generative replay (Shin et al. 2017): every batch of the current task is joined
    by responses the previous model generates for past tasks' particles, and the model
    is trained on both with its own loss."""

    name = "generative_replay"

    def batch_losses(self, task: TaskData, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        replayed = self.replay()
        images, conditions = task.images[rows], task.conditions[rows]
        if replayed is not None:
            images = torch.cat([images.to(replayed[2].device), replayed[2]])
            conditions = torch.cat([conditions.to(replayed[1].device), replayed[1]])
        return self.model.training_losses(self.batch(images, conditions))
