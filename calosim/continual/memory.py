"""What a strategy may keep of past tasks besides its model, within a declared budget.

A conditional simulator replays past tasks by generating responses for *particles* of
those tasks. Particles are cheap (9 numbers; in production the event generator makes as
many as wanted), responses are what the full simulation pays for, so replay strategies
keep a fixed-size random sample of each past task's standardised particle attributes:
``per_task`` rows of 9 float32, 36 bytes each (2000 rows: 72 kB per task, against 7.7 kB
for a single stored response). No response of a past task is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from calosim.errors import CalosimError


class ConditionMemory:
    """Up to ``per_task`` standardised particle rows of each task seen."""

    def __init__(self, per_task: int) -> None:
        if per_task < 1:
            raise CalosimError(f"condition_memory must be at least 1 row per task, got {per_task}")
        self.per_task = per_task
        self.rows: dict[int, torch.Tensor] = {}

    @property
    def tasks(self) -> list[int]:
        return sorted(self.rows)

    @property
    def nbytes(self) -> int:
        return sum(rows.numel() * rows.element_size() for rows in self.rows.values())

    def remember(self, task: int, conditions: np.ndarray | torch.Tensor,
                 generator: torch.Generator) -> None:
        """Keep a uniform random sample (without replacement) of ``conditions`` for ``task``."""
        table = torch.as_tensor(np.asarray(conditions, dtype=np.float32))
        if len(table) == 0:
            raise CalosimError(f"task {task + 1}: no particles to remember")
        chosen = torch.randperm(len(table), generator=generator)[: self.per_task]
        self.rows[task] = table[chosen.sort().values].clone()

    def sample(self, task: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` rows of ``task`` drawn with replacement."""
        rows = self.rows[task]
        return rows[torch.randint(len(rows), (n,), generator=generator)]

    def state_dict(self) -> dict[str, Any]:
        """Plain values and tensors, for a checkpoint."""
        return {"per_task": self.per_task,
                "rows": {str(task): rows for task, rows in self.rows.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``state_dict``."""
        self.per_task = int(state["per_task"])
        self.rows = {int(task): table for task, table in state["rows"].items()}
