"""Synaptic intelligence (Zenke et al. 2017).

During a task each parameter's contribution to the decrease of the loss is integrated
along the optimisation path, w_k += -g_k * (theta_k after - theta_k before) per update
(g: the gradient the update followed). At the end of the task the importance grows by
Omega_k += w_k / ((theta_k(end) - theta_k(start))^2 + damping), and later tasks pay
strength * sum_k Omega_k (theta_k - theta*_k)^2 towards the end-of-task parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from calosim.continual.strategies.base import StrategyOptions, TaskData
from calosim.continual.strategies.plugin import PluginStrategy
from calosim.continual.strategies.vae import parameters_of, quadratic_penalty, tensor_bytes
from calosim.models.base import GenerativeModel


@dataclass
class SIOptions(StrategyOptions):
    """SI options: penalty strength c and the damping xi of the importance."""

    strength: float = 1.0
    damping: float = 0.1

    def __post_init__(self) -> None:
        if self.strength < 0:
            raise ValueError(f"strength must not be negative, got {self.strength}")
        if self.damping <= 0:
            raise ValueError(f"damping must be positive, got {self.damping}")


class SIStrategy(PluginStrategy):
    """Fine-tuning with the synaptic-intelligence penalty."""

    name = "si"
    options_class = SIOptions
    options: SIOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.importance: dict[str, torch.Tensor] | None = None
        self.anchor: dict[str, torch.Tensor] | None = None
        self.path: dict[str, torch.Tensor] = {}
        self.task_start: dict[str, torch.Tensor] = {}
        self.step_start: dict[str, torch.Tensor] = {}

    def prepare(self, task: TaskData) -> None:
        self.task_start = parameters_of(self.model)
        self.step_start = dict(self.task_start)
        self.path = {name: torch.zeros_like(p) for name, p in self.task_start.items()}

    def penalty(self) -> Mapping[str, torch.Tensor]:
        if self.importance is None or self.anchor is None:
            return {}
        return {"si": self.options.strength
                * quadratic_penalty(self.model, self.importance, self.anchor)}

    def after_step(self, model: GenerativeModel) -> None:
        # the step's gradient is still in place: -g . (theta_after - theta_before)
        for name, parameter in model.named_parameters():
            if name in self.path and parameter.grad is not None:
                moved = parameter.detach() - self.step_start[name]
                self.path[name] -= parameter.grad.detach() * moved
        self.step_start = parameters_of(model)

    def consolidate(self, task: TaskData) -> None:
        end = parameters_of(self.model)
        added = {name: self.path[name] / ((end[name] - self.task_start[name]).square()
                                          + self.options.damping) for name in end}
        if self.importance is not None:
            added = {name: value + self.importance[name] for name, value in added.items()}
        self.importance, self.anchor = added, end
        self.path, self.step_start = {}, {}

    def extra_bytes(self) -> int:
        return tensor_bytes(self.importance, self.anchor)

    def extra_state(self) -> dict[str, Any]:
        return {"importance": self.importance, "anchor": self.anchor}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.importance, self.anchor = state["importance"], state["anchor"]
