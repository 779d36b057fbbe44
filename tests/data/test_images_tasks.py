from __future__ import annotations

import numpy as np
import pytest

from calosim.data.image_tasks import (
    class_incremental_classes,
    class_incremental_tasks,
    dirichlet_tasks,
    task_class_counts,
    task_datasets,
)
from calosim.data.images import load_digits
from calosim.errors import CalosimError


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """4000 labels of 10 classes with unequal sizes, shuffled."""
    rng = np.random.default_rng(5)
    return rng.permutation(np.repeat(np.arange(10), np.arange(10) * 20 + 310))


def assert_partition(tasks: list[np.ndarray], n_rows: int) -> None:
    """Sorted, disjoint, and together every row exactly once."""
    for rows in tasks:
        assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate(tasks)), np.arange(n_rows))


def test_class_incremental_is_split_mnist(labels):
    assert class_incremental_classes(10) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    tasks = class_incremental_tasks(labels)
    assert len(tasks) == 5
    assert_partition(tasks, len(labels))
    for task, rows in enumerate(tasks):
        assert set(np.unique(labels[rows])) == {2 * task, 2 * task + 1}


def test_class_incremental_needs_classes_shared_equally(labels):
    with pytest.raises(CalosimError, match="10 classes cannot be shared equally by 3 tasks"):
        class_incremental_tasks(labels, n_tasks=3)
    assert [len(classes) for classes in class_incremental_classes(10, 2)] == [5, 5]


def test_dirichlet_tasks_partition_the_rows_reproducibly(labels):
    tasks = dirichlet_tasks(labels, seed=3)
    assert len(tasks) == 10
    assert_partition(tasks, len(labels))
    for again, rows in zip(dirichlet_tasks(labels, seed=3), tasks, strict=True):
        np.testing.assert_array_equal(again, rows)
    other = dirichlet_tasks(labels, seed=4)
    assert any(not np.array_equal(a, b) for a, b in zip(other, tasks, strict=True))


def test_dirichlet_alpha_controls_how_alike_the_tasks_are(labels):
    counts = np.bincount(labels)
    # Each class's share in each task; an even split gives 1 / n_tasks everywhere.
    spread = {
        alpha: task_class_counts(labels, dirichlet_tasks(labels, 10, alpha, seed=0)) / counts
        for alpha in (0.1, 1.0, 1000.0)
    }
    np.testing.assert_allclose(spread[1000.0], 0.1, atol=0.03)
    # With alpha 1 a class is not shared evenly: its largest share is several times the
    # even one; with alpha 0.1 nearly all of a class sits in one task.
    assert np.median(spread[1.0].max(axis=0)) > 0.4
    assert np.median(spread[0.1].max(axis=0)) > 0.8
    for alpha, low, high in ((1.0, 0.7, 1.0), (1000.0, 0.2, 0.3)):
        task_mix = task_class_counts(labels, dirichlet_tasks(labels, 10, alpha, seed=0))
        # Part of a task held by its two largest classes (0.2 for an even mix of ten):
        # with alpha 1 one or two classes dominate each task, as in the thesis' figure.
        dominant = np.sort(task_mix / task_mix.sum(axis=1, keepdims=True), axis=1)[:, -2:]
        assert low < np.median(dominant.sum(axis=1)) < high


def test_dirichlet_rejects_bad_parameters(labels):
    for alpha in (0.0, -1.0, float("nan")):
        with pytest.raises(CalosimError, match="alpha"):
            dirichlet_tasks(labels, alpha=alpha)
    with pytest.raises(CalosimError, match="at least one task"):
        dirichlet_tasks(labels, n_tasks=0)
    with pytest.raises(CalosimError, match="integer class labels"):
        dirichlet_tasks(labels.astype(np.float64))
    with pytest.raises(CalosimError, match="labels reach 9 but there are 5 classes"):
        dirichlet_tasks(labels, n_classes=5)


def test_task_datasets_hold_each_tasks_images():
    train = load_digits(8, seed=0).train
    tasks = class_incremental_tasks(train.labels, n_classes=train.n_classes)
    parts = task_datasets(train, tasks)
    assert sum(len(part) for part in parts) == len(train)
    for classes, part, rows in zip(class_incremental_classes(10), parts, tasks, strict=True):
        assert set(np.unique(part.labels)) == set(classes)
        np.testing.assert_array_equal(part.images, train.images[rows])
    np.testing.assert_array_equal(task_class_counts(train.labels, tasks).sum(axis=0),
                                  np.bincount(train.labels))
