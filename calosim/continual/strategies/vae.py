"""The template of the strategies written for one VAE, which train it task after task in
phases of their own (``Strategy.fit``): fine-tune on each task's batches, with hooks for
what a strategy adds (replay, alignment, consolidation after a task). The Lifelong VAE,
BooVAE and BinPlay build on it; the strategies that work with any model are plug-ins of
the Trainer instead (plugin.py).

Generative replay of past tasks draws particles of a past task from the condition memory
and prior noise, and takes the responses a frozen copy of the model (made at the start
of the task) generates for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from calosim.continual.strategies.base import (
    FrozenReplaySource,
    Strategy,
    StrategyOptions,
    TaskData,
)


@dataclass
class ReplayOptions(StrategyOptions):
    """How much a replay strategy replays: ``replay_ratio`` x batch_size rows of each
    past task per batch of current data (the Multiband VAE appendix uses 0.5)."""

    replay_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.replay_ratio <= 0:
            raise ValueError(f"replay_ratio must be positive, got {self.replay_ratio}")


def replay_rows_per_task(options: ReplayOptions, batch_size: int) -> int:
    """Replayed rows of each past task per batch (at least 1)."""
    return max(1, round(options.replay_ratio * batch_size))


class VAEStrategy(Strategy):
    """Fine-tunes the model on every task in turn (naive fine-tuning, with no hook
    overridden) and hosts the hooks of strategies that add replay, penalties or
    consolidation."""

    model_name = "cvae"

    def learn_task(self, task: TaskData) -> dict[str, float]:
        self.prepare(task)
        losses = self.fit(
            len(task), list(self.model.parameters()),
            lambda rows, epoch: self.batch_losses(task, rows),
            self.context.training.epochs, f"task {task.index + 1} {self.name}",
            before_update=self.before_update, after_update=self.after_update,
        )
        self.consolidate(task)
        return losses

    # hooks ---------------------------------------------------------------------

    def prepare(self, task: TaskData) -> None:
        """Before training on ``task``."""

    def batch_losses(self, task: TaskData, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses of one batch of ``task``: the model's own loss on the real rows."""
        return self.model.training_losses(self.batch(task.images[rows], task.conditions[rows]))

    def before_update(self) -> None:
        """Between backward and the optimiser step."""

    def after_update(self) -> None:
        """After the optimiser step."""

    def consolidate(self, task: TaskData) -> None:
        """After training on ``task`` (before the loop evaluates the model)."""


class ReplayStrategy(FrozenReplaySource, VAEStrategy):
    """A VAE strategy that replays past tasks from a frozen copy of its model."""

    options_class = ReplayOptions
    options: ReplayOptions
    uses_condition_memory = True

    def replay(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Replayed (noise, conditions, responses) of all past tasks, or None at task 1:
        the frozen model's generation from fresh prior noise and remembered particles."""
        if self.frozen is None or not self.memory.tasks:
            return None
        n = replay_rows_per_task(self.options, self.context.training.batch_size)
        noise, conditions = self.replay_noise_and_conditions(n, self.generator)
        with torch.no_grad():
            images = self.frozen.generate(noise, conditions)
        return noise, conditions, images


def parameters_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters, by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def quadratic_penalty(model: nn.Module, importance: dict[str, torch.Tensor],
                      anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_k importance_k (theta_k - anchor_k)^2 over the named parameters (EWC, SI)."""
    total = next(model.parameters()).new_zeros(())
    for name, parameter in model.named_parameters():
        if name in importance:
            total = total + (importance[name] * (parameter - anchor[name]).square()).sum()
    return total


def tensor_bytes(*groups: dict[str, torch.Tensor] | None) -> int:
    """Bytes held by dicts of tensors (None counts as empty)."""
    return sum(t.numel() * t.element_size() for g in groups if g for t in g.values())
