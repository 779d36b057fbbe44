"""What a plug-in may add to the one training loop (calosim.training.trainer).

A continual strategy (calosim.continual) is such a plug-in: it adds rows to every batch
(replay), terms to the model's loss (EWC, SI, replay alignment) and bookkeeping after each
optimiser step (SI's path integral), while the model's own ``training_step`` optimises and
the Trainer keeps its epochs, validation, moving average, refinement and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from calosim.models.base import Batch, GenerativeModel

# Weighted loss terms a plug-in adds to the model's objective, by name (for the log).
Penalty = Callable[[], Mapping[str, torch.Tensor]]


class TrainingHooks:
    """The hooks of the training loop; each one here leaves the loop as it is."""

    def extend_batch(self, batch: Batch) -> Batch:
        """The batch the model trains on, from the batch of training rows: also called on
        the batches of the model's refinement phase."""
        return batch

    def penalty(self) -> Mapping[str, torch.Tensor]:
        """Weighted terms added to the model's loss in every optimisation step."""
        return {}

    def after_step(self, model: GenerativeModel) -> None:
        """After each optimisation step (the gradients of the step are still in place)."""


NO_HOOKS = TrainingHooks()
