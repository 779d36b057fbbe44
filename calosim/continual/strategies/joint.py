"""Joint training: the upper bound, which keeps every task's data and trains on all of it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from calosim.continual.strategies.base import TaskData
from calosim.continual.strategies.plugin import PluginStrategy
from calosim.training.trainer import TrainingData


class JointStrategy(PluginStrategy):
    """Task i's run trains, for the task budget, on the union of the training data of
    tasks 1..i and validates on the union of their validation parts (each task's share
    alike). Its memory is all of that data (declared as such)."""

    name = "joint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[dict[str, torch.Tensor]] = []

    def training_data(self, task: TaskData) -> TrainingData:
        assert task.training is not None
        parts = [*self.seen, _as_tensors(task.training)]
        share = max(2, self.context.training.validation_size // len(parts))
        return TrainingData(
            responses=torch.cat([p["responses"] for p in parts]).numpy(),
            conditions=torch.cat([p["conditions"] for p in parts]).numpy(),
            validation_particles=torch.cat([p["val_particles"][:share] for p in parts]).numpy(),
            validation_responses=torch.cat([p["val_responses"][:share] for p in parts]).numpy(),
        )

    def end_task(self, task: TaskData) -> None:
        super().end_task(task)
        assert task.training is not None
        self.seen.append(_as_tensors(task.training))

    def extra_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for part in self.seen for t in part.values())

    def extra_state(self) -> dict[str, Any]:
        return {"seen": list(self.seen)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.seen = list(state["seen"])


def _as_tensors(data: TrainingData) -> dict[str, torch.Tensor]:
    """The rows of ``data`` it trains on and its validation part, as CPU tensors."""
    rows = data.index if data.index is not None else np.arange(len(data.responses))
    return {
        "responses": torch.from_numpy(np.asarray(data.responses[rows], np.float32)),
        "conditions": torch.from_numpy(np.asarray(data.conditions[rows], np.float32)),
        "val_particles": torch.from_numpy(np.asarray(data.validation_particles)),
        "val_responses": torch.from_numpy(np.asarray(data.validation_responses, np.float32)),
    }
