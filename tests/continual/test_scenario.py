"""Energy tasks of a continual run: reproducible, disjoint, ordered, checked."""

from __future__ import annotations

import numpy as np
import pytest
from continual_helpers import toy_dataset

from calosim.continual.memory import ConditionMemory
from calosim.continual.scenario import energy_scenario
from calosim.data.dataset import ZDCDataset
from calosim.errors import CalosimError, DataFormatError


def _rows(dataset: ZDCDataset) -> set[bytes]:
    return {row.tobytes() for row in dataset.particles}


def test_tasks_are_reproducible_disjoint_and_cover_the_data(toy) -> None:
    first = energy_scenario(toy, n_tasks=3, seed=11)
    again = energy_scenario(toy, n_tasks=3, seed=11)
    other = energy_scenario(toy, n_tasks=3, seed=12)
    assert first.n_tasks == 3 and [t.index for t in first.tasks] == [0, 1, 2]
    for a, b in zip(first.tasks, again.tasks, strict=True):
        for part in ("train", "val", "test"):
            assert np.array_equal(getattr(a, part).particles, getattr(b, part).particles)
    assert not np.array_equal(first.tasks[0].train.particles, other.tasks[0].train.particles)
    seen: set[bytes] = set()
    for task in first.tasks:
        parts = [_rows(task.train), _rows(task.val), _rows(task.test)]
        for part in parts:
            assert not part & seen  # no row in two parts or two tasks
            seen |= part
    assert len(seen) == len(toy)


def test_tasks_go_from_low_to_high_energy_within_their_ranges(toy) -> None:
    scenario = energy_scenario(toy, n_tasks=4, seed=0)
    previous_high = -np.inf
    for task in scenario.tasks:
        low, high = task.energy_range
        energies = np.concatenate([task.train.column("Energy"), task.test.column("Energy")])
        assert low >= previous_high and energies.min() >= low and energies.max() <= high
        assert task.name == f"{low:.0f}-{high:.0f} GeV"
        previous_high = high
    sizes = [len(t.train) + len(t.val) + len(t.test) for t in scenario.tasks]
    assert max(sizes) - min(sizes) <= 2  # quantile tasks are equally populated
    assert scenario.describe()[0]["n_train"] == len(scenario.tasks[0].train)


def test_particles_only_and_too_small_datasets_are_refused(toy) -> None:
    particles_only = ZDCDataset(responses=None, particles=toy.particles)
    with pytest.raises(DataFormatError, match="particles only"):
        energy_scenario(particles_only, source="p.h5")
    with pytest.raises(CalosimError, match="energy task .* use more data or fewer tasks"):
        energy_scenario(toy_dataset(12, seed=1), n_tasks=5)


def test_condition_memory_keeps_a_bounded_sample_per_task() -> None:
    import torch

    memory = ConditionMemory(per_task=10)
    generator = torch.Generator().manual_seed(0)
    table = np.arange(50 * 9, dtype=np.float32).reshape(50, 9)
    memory.remember(0, table, generator)
    memory.remember(1, table[:4], generator)
    assert memory.tasks == [0, 1]
    assert memory.rows[0].shape == (10, 9) and memory.rows[1].shape == (4, 9)
    assert memory.nbytes == 14 * 9 * 4
    kept = {row.tobytes() for row in memory.rows[0].numpy()}
    assert kept <= {row.tobytes() for row in table} and len(kept) == 10
    drawn = memory.sample(0, 200, generator)
    assert {row.tobytes() for row in drawn.numpy()} <= kept
    restored = ConditionMemory(per_task=1)
    restored.load_state_dict(memory.state_dict())
    assert restored.per_task == 10 and torch.equal(restored.rows[1], memory.rows[1])
    with pytest.raises(CalosimError, match="at least 1 row"):
        ConditionMemory(per_task=0)
