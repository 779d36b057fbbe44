"""Train/validation/test splits and the energy tasks of continual-learning experiments.

Splits hold sorted row indices, so a subset reads a file front to back. Energy tasks
follow the Multiband VAE convention: 2 * n_tasks quantile bins of the energy over the
whole dataset (deciles for 5 tasks), neighbouring bins paired into one task, tasks
ordered from low to high energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calosim.errors import CalosimError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64)
    if values.shape != (len(SPLIT_NAMES),) or (values < 0).any() or not np.isclose(values.sum(), 1):
        raise CalosimError(
            f"split fractions must be {len(SPLIT_NAMES)} non-negative numbers summing to 1, "
            f"got {tuple(fractions)}"
        )
    return values


def _split(indices: np.ndarray, rng: np.random.Generator,
           fractions: Sequence[float]) -> dict[str, np.ndarray]:
    """Shuffle ``indices`` with ``rng`` and cut them into sorted train/val/test parts."""
    bounds = np.rint(np.cumsum(_check_fractions(fractions)) * len(indices)).astype(np.int64)
    shuffled = rng.permutation(indices)
    parts = np.split(shuffled, bounds[:-1])
    return {name: np.sort(part) for name, part in zip(SPLIT_NAMES, parts, strict=True)}


def split_indices(n: int, seed: int,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Split rows 0..n-1 into disjoint sorted train/val/test index arrays covering all rows.

    Membership is random but fixed by ``seed``; part sizes are round(fraction * n).
    """
    if n < 0:
        raise CalosimError(f"cannot split {n} rows")
    return _split(np.arange(n), np.random.default_rng(seed), fractions)


def energy_task_edges(energies: np.ndarray, n_tasks: int = 5) -> np.ndarray:
    """The n_tasks + 1 energy boundaries of the tasks: every other of 2 * n_tasks quantile bins."""
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    if n_tasks < 1:
        raise CalosimError(f"n_tasks must be at least 1, got {n_tasks}")
    if len(energies) == 0 or not np.isfinite(energies).all():
        raise CalosimError("energy tasks need at least one particle and finite energies")
    bin_edges = np.quantile(energies, np.linspace(0, 1, 2 * n_tasks + 1))
    return bin_edges[::2]


def energy_task_indices(energies: np.ndarray, n_tasks: int = 5) -> list[np.ndarray]:
    """Row indices of each energy task, from the lowest-energy task to the highest.

    A particle belongs to task t when edges[t] <= E < edges[t + 1] (the last task also
    takes E equal to the maximum), so equal energies always share a task, tasks are
    disjoint, cover every row, and every energy in task t is below those of task t + 1.
    Heavy ties at a boundary make that task larger (or a task empty) rather than split
    equal energies.
    """
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    inner_edges = energy_task_edges(energies, n_tasks)[1:-1]
    task_of_row = np.searchsorted(inner_edges, energies, side="right")
    return [np.flatnonzero(task_of_row == task) for task in range(n_tasks)]


def energy_task_splits(
    energies: np.ndarray, n_tasks: int = 5, seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> list[dict[str, np.ndarray]]:
    """For each energy task (low to high), its own train/val/test split of dataset rows.

    Task t is shuffled with its own generator derived from (seed, t): the same seed and
    energies give the same splits.
    """
    _check_fractions(fractions)
    return [
        _split(rows, _task_generator(seed, task), fractions)
        for task, rows in enumerate(energy_task_indices(energies, n_tasks))
    ]


def period_split(n: int, seed: int, period: int,
                 fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """The train/val/test split of the ``n`` rows of one period's file, period ``period``
    (0-based) of a run seeded ``seed``: the very split energy_task_splits gives task
    ``period`` when the file holds that task's rows in dataset order."""
    return _split(np.arange(n), _task_generator(seed, period), fractions)


def _task_generator(seed: int, task: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(task,)))
