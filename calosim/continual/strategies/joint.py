"""Joint training: the upper bound, which keeps every task's data and trains on all of it."""

from __future__ import annotations

from typing import Any

import torch

from calosim.continual.strategies.base import TaskData
from calosim.continual.strategies.vae import VAEStrategy


class JointStrategy(VAEStrategy):
    """After task i the model has trained, for the epoch budget, on the union of the
    training data of tasks 1..i. Its memory is all of that data (declared as such)."""

    name = "joint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen_images: list[torch.Tensor] = []
        self.seen_conditions: list[torch.Tensor] = []

    def learn_task(self, task: TaskData) -> dict[str, float]:
        union = TaskData(
            task.index, task.name,
            torch.cat([*self.seen_images, task.images]),
            torch.cat([*self.seen_conditions, task.conditions]),
            task.energy_range,
        )
        return super().learn_task(union)

    def end_task(self, task: TaskData) -> None:
        super().end_task(task)
        self.seen_images.append(task.images)
        self.seen_conditions.append(task.conditions)

    def extra_bytes(self) -> int:
        return sum(t.numel() * t.element_size()
                   for t in (*self.seen_images, *self.seen_conditions))

    def extra_state(self) -> dict[str, Any]:
        return {"images": list(self.seen_images), "conditions": list(self.seen_conditions)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.seen_images = list(state["images"])
        self.seen_conditions = list(state["conditions"])
