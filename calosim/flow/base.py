"""The solver interface: z(1) = noise, dz/dt = v(z, t), return z(0)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch

# v(z, t): the velocity at points z (B, D) and one time t in [0, 1]
Velocity = Callable[[torch.Tensor, float], torch.Tensor]


class FlowSolver(ABC):
    """Integrates the flow from t = 1 to t = 0 in ``steps`` equal steps."""

    # network evaluations per step
    evaluations_per_step: ClassVar[int] = 1

    def __init__(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"a solver needs at least one step, got {steps}")
        self.steps = steps

    @property
    def evaluations(self) -> int:
        """Network evaluations of one ``sample``."""
        return self.steps * self.evaluations_per_step

    def times(self) -> list[float]:
        """The step boundaries, from 1 down to 0."""
        return [1.0 - i / self.steps for i in range(self.steps + 1)]

    @abstractmethod
    def sample(self, velocity: Velocity, noise: torch.Tensor) -> torch.Tensor:
        """z(0) of the flow that starts at z(1) = ``noise``."""
