"""Splits and energy tasks: reproducible, disjoint, covering, ordered low to high."""

from __future__ import annotations

import numpy as np
import pytest

from calosim.data import (
    ZDCDataset,
    energy_task_edges,
    energy_task_indices,
    energy_task_splits,
    split_indices,
)
from calosim.errors import CalosimError


def _assert_partition(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n, "parts overlap or miss rows"
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (1.0, 0.0, 0.0),
                                       (0.7, 0.3, 0.0), (1 / 3, 1 / 3, 1 / 3)])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10, 99, 1001, 2999])
def test_split_is_a_partition_of_the_right_sizes(n: int,
                                                 fractions: tuple[float, float, float]) -> None:
    split = split_indices(n, seed=n * 31 + 5, fractions=fractions)
    assert list(split) == ["train", "val", "test"]
    _assert_partition(list(split.values()), n)
    bounds = np.rint(np.cumsum(fractions) * n)
    assert [len(p) for p in split.values()] == list(np.diff(np.concatenate([[0], bounds])))
    assert all(np.all(np.diff(p) > 0) for p in split.values())  # sorted, for file reads


def test_split_depends_only_on_the_seed() -> None:
    first, again, other = (split_indices(1000, seed) for seed in (4, 4, 5))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["test"], other["test"])
    assert len(np.intersect1d(first["test"], np.arange(100))) < 100  # shuffled, not a prefix


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_a_user_error(fractions: tuple[float, ...]) -> None:
    with pytest.raises(CalosimError, match="fractions"):
        split_indices(10, 0, fractions)


def test_energy_tasks_are_quintiles_from_paired_deciles() -> None:
    energies = np.random.default_rng(3).lognormal(5, 1.5, 10_000)
    tasks = energy_task_indices(energies, n_tasks=5)
    _assert_partition(tasks, len(energies))
    assert [len(t) for t in tasks] == [2000] * 5
    for low, high in zip(tasks, tasks[1:], strict=False):
        assert energies[low].max() < energies[high].min()
    deciles = np.quantile(energies, np.linspace(0, 1, 11))
    np.testing.assert_array_equal(energy_task_edges(energies, 5), deciles[::2])


def test_equal_energies_share_a_task() -> None:
    energies = np.repeat([10.0, 20.0, 30.0, 40.0], [50, 5, 30, 15])
    tasks = energy_task_indices(energies, n_tasks=5)
    _assert_partition(tasks, len(energies))
    for energy in np.unique(energies):
        holding = [t for t, rows in enumerate(tasks) if np.any(energies[rows] == energy)]
        assert len(holding) == 1
    maxima = [energies[rows].max() for rows in tasks if len(rows)]
    assert maxima == sorted(maxima)
    edges = energy_task_edges(energies, 5)
    assert np.isin(edges[1:-1], energies).all()  # boundaries fall on tied values here
    for task, rows in enumerate(tasks):  # half-open [low, high): a tie goes to the upper task
        assert np.all(energies[rows] >= edges[task])
        if task < 4:
            assert np.all(energies[rows] < edges[task + 1])


def test_each_task_gets_its_own_reproducible_split() -> None:
    energies = np.random.default_rng(8).uniform(1, 7000, 500)
    splits = energy_task_splits(energies, n_tasks=5, seed=2)
    again = energy_task_splits(energies, n_tasks=5, seed=2)
    tasks = energy_task_indices(energies, n_tasks=5)
    for task_rows, split, repeat in zip(tasks, splits, again, strict=True):
        _assert_partition([np.searchsorted(task_rows, p) for p in split.values()], len(task_rows))
        assert all(np.isin(p, task_rows).all() for p in split.values())
        assert [len(p) for p in split.values()] == [80, 10, 10]
        for name in split:
            np.testing.assert_array_equal(split[name], repeat[name])
    assert not np.array_equal(splits[0]["test"],
                              energy_task_splits(energies, 5, seed=3)[0]["test"])


def test_energy_tasks_need_energies() -> None:
    with pytest.raises(CalosimError):
        energy_task_indices(np.array([]), 5)
    with pytest.raises(CalosimError):
        energy_task_indices(np.array([1.0, np.nan]), 5)
    with pytest.raises(CalosimError):
        energy_task_indices(np.array([1.0, 2.0]), 0)


def test_dataset_split_and_tasks_wrap_the_index_functions(dataset: ZDCDataset) -> None:
    parts = dataset.split(seed=1)
    rows = split_indices(len(dataset), 1)
    for name, part in parts.items():
        np.testing.assert_array_equal(part.particles, dataset.particles[rows[name]])
        np.testing.assert_array_equal(part.responses, dataset.responses[rows[name]])
        np.testing.assert_array_equal(part.pdg, dataset.pdg[rows[name]])
    tasks = dataset.energy_tasks(n_tasks=2, seed=1, fractions=(0.5, 0.5, 0.0))
    assert len(tasks) == 2
    assert sum(len(part) for task in tasks for part in task.values()) == len(dataset)
    low = np.concatenate([p.column("Energy") for p in tasks[0].values()])
    high = np.concatenate([p.column("Energy") for p in tasks[1].values()])
    assert low.max() < high.min()
