"""Generative replay (Shin et al. 2017, "Continual learning with deep generative replay")
for any conditional simulator."""

from __future__ import annotations

import dataclasses

from calosim.continual.strategies.base import TaskData
from calosim.continual.strategies.plugin import (
    ReplayPlugin,
    replay_share,
    with_rows,
)
from calosim.models.base import Batch
from calosim.training.trainer import TrainingConfig


class GenerativeReplayStrategy(ReplayPlugin):
    """Every batch of the current task is joined by responses the model frozen at the start
    of the task generates for remembered particles of each past task, and the model learns
    both with its own loss, refinement phase included. A batch keeps ``batch_size`` rows in
    all, ``replay_ratio`` replayed rows of each past task per current row (1: every task
    weighs alike, as in joint training), so a step costs what a joint step costs."""

    name = "generative_replay"

    def training_config(self, task: TaskData) -> TrainingConfig:
        current, _ = replay_share(self.context.training, self.options.replay_ratio,
                                  len(self.memory.tasks))
        return dataclasses.replace(self.context.training, batch_size=current)

    def extend_batch(self, batch: Batch) -> Batch:
        if self.frozen is None:
            return batch
        _, per_task = replay_share(self.context.training, self.options.replay_ratio,
                                   len(self.memory.tasks))
        noise, conditions = self.replay_noise_and_conditions(per_task, batch.generator)
        images = self.replayed_images(noise, conditions, batch.generator)
        return with_rows(batch, images, conditions)
