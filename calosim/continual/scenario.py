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
from calosim.data.tasks import (
    DEFAULT_FRACTIONS,
    energy_task_edges,
    energy_task_splits,
    period_split,
)
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
    tasks = [
        _task(dataset, index, split, (float(edges[index]), float(edges[index + 1])),
              f"{source}: energy task {index + 1} of {n_tasks}")
        for index, split in enumerate(splits)
    ]
    return Scenario(tasks=tuple(tasks), seed=seed)


def period_task(
    dataset: ZDCDataset, period: int, seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS, *, source: str = "dataset",
) -> ContinualTask:
    """One data-taking period's file as task ``period`` (0-based) of a run seeded ``seed``:
    split as energy_scenario splits that task (calosim.data.tasks.period_split), its
    energy range the file's."""
    if not dataset.has_responses:
        raise DataFormatError(f"{source}: holds particles only, no responses to learn from")
    energies = dataset.column("Energy")
    if len(energies) == 0 or not np.isfinite(energies).all():
        raise CalosimError(f"{source}: a period needs particles with finite energies")
    split = period_split(len(dataset), seed, period, fractions)
    return _task(dataset, period, split, (float(energies.min()), float(energies.max())),
                 f"{source}: period {period + 1}")


def _task(dataset: ZDCDataset, index: int, split: dict[str, np.ndarray],
          energy_range: tuple[float, float], where: str) -> ContinualTask:
    low, high = energy_range
    if len(split["train"]) < 2 or len(split["test"]) < 1:
        raise CalosimError(
            f"{where} ({low:.4g}-{high:.4g} GeV) has {len(split['train'])} training and "
            f"{len(split['test'])} test responses; use more data or fewer tasks"
        )
    return ContinualTask(
        index=index,
        name=f"{low:.0f}-{high:.0f} GeV",
        energy_range=energy_range,
        **{part: dataset.subset(np.asarray(rows)) for part, rows in split.items()},
    )
