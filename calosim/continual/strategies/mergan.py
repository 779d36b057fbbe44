"""MeRGAN-style replay alignment (Wu et al. 2018, "Memory replay GANs: learning to generate
images from new categories without forgetting", MeRGAN-RA) for any conditional simulator.

The model learns the current task with its own loss on current data only; forgetting is
prevented at the instance level: the same (noise, past particle) pair is fed to the model
and to its copy frozen at the start of the task, and their generated responses (model
space) are aligned with a pixel-wise L2 loss, added to the model's loss in every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calosim.continual.strategies.plugin import ReplayPlugin, replay_share
from calosim.continual.strategies.vae import ReplayOptions


@dataclass
class MeRGANOptions(ReplayOptions):
    """Replay alignment options: weight of the alignment loss; ``replay_ratio``: as in
    generative replay, the aligned rows of each past task per step are those it would
    replay (plugin.replay_share)."""

    alignment_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alignment_weight < 0:
            raise ValueError(f"alignment_weight must not be negative, got {self.alignment_weight}")


class MeRGANStrategy(ReplayPlugin):
    """Own loss on the current task plus replay alignment to the frozen model."""

    name = "mergan"
    options_class = MeRGANOptions
    options: MeRGANOptions

    def penalty(self) -> Mapping[str, torch.Tensor]:
        if self.frozen is None:
            return {}
        _, per_task = replay_share(self.context.training, self.options.replay_ratio,
                                   len(self.memory.tasks))
        noise, conditions = self.replay_noise_and_conditions(per_task, self.generator)
        with torch.no_grad():
            targets = self.frozen.generate(noise, conditions)
        alignment = F.mse_loss(self.model.generate(noise, conditions), targets)
        return {"alignment": self.options.alignment_weight * alignment}
