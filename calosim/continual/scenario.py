"""The continual scenario: a dataset cut into energy-period tasks, each with its own
train/validation/test part.

Tasks follow calosim.data.energy_task_splits (the Multiband VAE convention: 2 * K energy
quantile bins over the whole dataset, neighbouring bins paired, low to high energy), so
the same dataset, K and seed always give the same, disjoint tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calosim.data.dataset import ZDCDataset
from calosim.data.tasks import DEFAULT_FRACTIONS, energy_task_edges, energy_task_splits
from calosim.errors import CalosimError, DataFormatError


@dataclass(frozen=True)
class ContinualTask:
    """One energy period: its position, name, energy range in GeV and data parts."""

    index: int
    name: str
    energy_range: tuple[float, float]
    train: ZDCDataset
    val: ZDCDataset
    test: ZDCDataset


@dataclass(frozen=True)
class Scenario:
    """The tasks of a continual run, in training order."""

    tasks: tuple[ContinualTask, ...]
    seed: int

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def describe(self) -> list[dict[str, object]]:
        """Per task: name, energy range and part sizes (for metrics.json)."""
        return [
            {"name": t.name, "energy_gev": list(t.energy_range), "n_train": len(t.train),
             "n_val": len(t.val), "n_test": len(t.test)}
            for t in self.tasks
        ]


def energy_scenario(
    dataset: ZDCDataset,
    n_tasks: int = 5,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    source: str = "dataset",
) -> Scenario:
    """Split ``dataset`` into ``n_tasks`` energy tasks (low to high), each into
    train/val/test with ``fractions``, fixed by ``seed``.

    Raises DataFormatError when the dataset holds no responses and CalosimError when a
    task gets fewer than 2 training or 1 test response (too small a dataset, or energies
    tied across a task boundary); ``source`` names the data in messages.
    """
    if not dataset.has_responses:
        raise DataFormatError(f"{source}: holds particles only, no responses to learn from")
    energies = dataset.column("Energy")
    edges = energy_task_edges(energies, n_tasks)
    splits = energy_task_splits(energies, n_tasks, seed, fractions)
    tasks = []
    for index, split in enumerate(splits):
        low, high = float(edges[index]), float(edges[index + 1])
        if len(split["train"]) < 2 or len(split["test"]) < 1:
            raise CalosimError(
                f"{source}: energy task {index + 1} of {n_tasks} ({low:.4g}-{high:.4g} GeV) has "
                f"{len(split['train'])} training and {len(split['test'])} test responses; "
                "use more data or fewer tasks"
            )
        tasks.append(ContinualTask(
            index=index,
            name=f"{low:.0f}-{high:.0f} GeV",
            energy_range=(low, high),
            **{part: dataset.subset(np.asarray(rows)) for part, rows in split.items()},
        ))
    return Scenario(tasks=tuple(tasks), seed=seed)
