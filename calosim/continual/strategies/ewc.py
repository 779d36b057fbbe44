"""Elastic weight consolidation (Kirkpatrick et al. 2017), online form (Schwarz et al. 2018).

After each task the diagonal Fisher information of the model's loss (the negative ELBO,
as the Lifelong VAE paper estimates it for its EWC baseline) is estimated at the learnt
parameters theta*, and later tasks pay (penalty / 2) sum_k F_k (theta_k - theta*_k)^2.
The Fisher is the empirical one: the squared gradient of each small batch's summed loss,
divided by the number of examples (near a minimum, where per-example gradients average
to zero, this estimates the mean squared per-example gradient); with ``decay`` < 1 older
tasks' Fisher fades (online EWC), with 1 it accumulates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from calosim.continual.strategies.base import StrategyOptions, TaskData
from calosim.continual.strategies.plugin import PluginStrategy
from calosim.continual.strategies.vae import parameters_of, quadratic_penalty, tensor_bytes


@dataclass
class EWCOptions(StrategyOptions):
    """EWC options: penalty strength, Fisher sample size and batch, decay."""

    penalty: float = 1000.0
    fisher_samples: int = 1024
    fisher_batch: int = 16
    decay: float = 1.0

    def __post_init__(self) -> None:
        if self.penalty < 0:
            raise ValueError(f"penalty must not be negative, got {self.penalty}")
        if self.fisher_samples < 1 or self.fisher_batch < 1:
            raise ValueError("fisher_samples and fisher_batch must be positive")
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay must lie in (0, 1], got {self.decay}")


class EWCStrategy(PluginStrategy):
    """Fine-tuning with the EWC penalty towards the parameters of past tasks."""

    name = "ewc"
    options_class = EWCOptions
    options: EWCOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fisher: dict[str, torch.Tensor] | None = None
        self.anchor: dict[str, torch.Tensor] | None = None

    def penalty(self) -> Mapping[str, torch.Tensor]:
        if self.fisher is None or self.anchor is None:
            return {}
        return {"ewc": 0.5 * self.options.penalty
                * quadratic_penalty(self.model, self.fisher, self.anchor)}

    def consolidate(self, task: TaskData) -> None:
        fisher = self.estimate_fisher(task)
        if self.fisher is not None:
            fisher = {k: v + self.options.decay * self.fisher[k] for k, v in fisher.items()}
        self.fisher = fisher
        self.anchor = parameters_of(self.model)

    def estimate_fisher(self, task: TaskData) -> dict[str, torch.Tensor]:
        """Diagonal empirical Fisher of the loss on a random sample of ``task``."""
        rows = torch.randperm(len(task), generator=self.generator)[: self.options.fisher_samples]
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        fisher = {name: torch.zeros_like(p) for name, p in named}
        for start in range(0, len(rows), self.options.fisher_batch):
            chunk = rows[start : start + self.options.fisher_batch]
            self.model.zero_grad(set_to_none=True)
            batch = self.batch(task.images[chunk], task.conditions[chunk])
            self.model.training_losses(batch)["loss"].backward()
            for name, parameter in named:
                if parameter.grad is not None:
                    fisher[name] += parameter.grad.detach().square() * len(chunk) ** 2
        self.model.zero_grad(set_to_none=True)
        return {name: value / len(rows) for name, value in fisher.items()}

    def extra_bytes(self) -> int:
        return tensor_bytes(self.fisher, self.anchor)

    def extra_state(self) -> dict[str, Any]:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.fisher, self.anchor = state["fisher"], state["anchor"]
