"""MeRGAN-style replay alignment (Wu et al. 2018, MeRGAN-RA) for a conditional generator.

The model learns the current task with its own loss on current data only; forgetting is
prevented at the instance level: the same (noise, past particle) pair is fed to the
generator and to its copy frozen at the start of the task, and their outputs are aligned
with a pixel-wise L2 loss. Here the conditional generator is the VAE's decoder
(generation = decoding prior noise with the particle), so the alignment acts on exactly
the function that simulates responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calosim.continual.strategies.base import TaskData
from calosim.continual.strategies.vae import ReplayOptions, ReplayStrategy


@dataclass
class MeRGANOptions(ReplayOptions):
    """Replay alignment options: weight of the alignment loss."""

    alignment_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alignment_weight < 0:
            raise ValueError(f"alignment_weight must not be negative, got {self.alignment_weight}")


class MeRGANStrategy(ReplayStrategy):
    """Own loss on the current task plus replay alignment to the frozen generator."""

    name = "mergan"
    options_class = MeRGANOptions
    options: MeRGANOptions

    def batch_losses(self, task: TaskData, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = super().batch_losses(task, rows)
        replayed = self.replay()
        if replayed is not None:
            noise, conditions, targets = replayed
            losses["alignment"] = F.mse_loss(self.model.generate(noise, conditions), targets)
            losses["loss"] = losses["loss"] + self.options.alignment_weight * losses["alignment"]
        return losses
