"""Continual-learning task splits of labelled images: class-incremental and Dirichlet.

Both take an array of class labels and return one sorted index array per task; the tasks
are disjoint and together cover every row. They apply equally to a training and a test
part (the Dirichlet split then draws its own proportions from the same seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calosim.data.images import ImageDataset
from calosim.errors import CalosimError

DEFAULT_CLASS_INCREMENTAL_TASKS = 5
DEFAULT_DIRICHLET_TASKS = 10
DEFAULT_DIRICHLET_ALPHA = 1.0


def _check_labels(labels: np.ndarray, n_classes: int | None) -> tuple[np.ndarray, int]:
    labels = np.asarray(labels).reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise CalosimError("task splits need non-negative integer class labels")
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if len(labels) else 0
    if len(labels) and labels.max() >= n_classes:
        raise CalosimError(f"labels reach {labels.max()} but there are {n_classes} classes")
    return labels.astype(np.int64), n_classes


def class_incremental_classes(n_classes: int,
                              n_tasks: int = DEFAULT_CLASS_INCREMENTAL_TASKS
                              ) -> list[tuple[int, ...]]:
    """The classes of each task: consecutive groups of n_classes / n_tasks labels, so 10
    classes in 5 tasks give (0, 1), (2, 3), (4, 5), (6, 7), (8, 9) as in split-MNIST."""
    if n_tasks < 1 or n_classes % n_tasks:
        raise CalosimError(f"{n_classes} classes cannot be shared equally by {n_tasks} tasks")
    per_task = n_classes // n_tasks
    return [tuple(range(task * per_task, (task + 1) * per_task)) for task in range(n_tasks)]


def class_incremental_tasks(labels: np.ndarray, n_tasks: int = DEFAULT_CLASS_INCREMENTAL_TASKS,
                            n_classes: int | None = None) -> list[np.ndarray]:
    """Row indices of each class-incremental task (see class_incremental_classes).

    ``n_classes`` defaults to the largest label + 1.
    """
    labels, n_classes = _check_labels(labels, n_classes)
    return [np.flatnonzero(np.isin(labels, classes))
            for classes in class_incremental_classes(n_classes, n_tasks)]


def dirichlet_shares(class_prior: np.ndarray, n_tasks: int, alpha: float,
                     rng: np.random.Generator) -> np.ndarray:
    """(n_tasks, n_classes) shares of each class given to each task; columns sum to 1.

    Each task draws its class distribution q_t ~ Dir(alpha * p), p the prior class
    distribution (Deja et al. 2022, Multiband VAE, after Hsu et al. 2019); class c is then
    shared among the tasks in proportion to q_t[c], so every example lands in one task.
    Small alpha makes each task dominated by one or two classes, large alpha gives every
    task nearly the prior mix.
    """
    concentration = alpha * class_prior
    present = concentration > 0
    task_mix = np.zeros((n_tasks, len(class_prior)))
    task_mix[:, present] = rng.dirichlet(concentration[present], size=n_tasks)
    totals = task_mix.sum(axis=0)
    for column in np.flatnonzero(present & (totals == 0)):
        # Extreme concentration can underflow a whole column; its limit is one task.
        task_mix[rng.integers(n_tasks), column] = 1.0
    totals = task_mix.sum(axis=0)
    return np.divide(task_mix, totals, out=np.zeros_like(task_mix), where=totals > 0)


def dirichlet_tasks(labels: np.ndarray, n_tasks: int = DEFAULT_DIRICHLET_TASKS,
                    alpha: float = DEFAULT_DIRICHLET_ALPHA, seed: int = 0,
                    n_classes: int | None = None) -> list[np.ndarray]:
    """Row indices of each Dirichlet task (shares from dirichlet_shares), fixed by ``seed``.

    Each class's rows are shuffled and cut at round(cumulative share * class size), so tasks
    are disjoint and cover every row; a task may be small, or empty for tiny data.
    """
    labels, n_classes = _check_labels(labels, n_classes)
    if n_tasks < 1:
        raise CalosimError(f"need at least one task, got {n_tasks}")
    if not np.isfinite(alpha) or alpha <= 0:
        raise CalosimError(f"Dirichlet alpha must be a positive number, got {alpha}")
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=n_classes)
    shares = dirichlet_shares(counts / max(len(labels), 1), n_tasks, alpha, rng)
    parts: list[list[np.ndarray]] = [[] for _ in range(n_tasks)]
    for label in range(n_classes):
        rows = rng.permutation(np.flatnonzero(labels == label))
        bounds = np.rint(np.cumsum(shares[:, label]) * len(rows)).astype(np.int64)
        for task, chunk in enumerate(np.split(rows, bounds[:-1])):
            parts[task].append(chunk)
    return [np.sort(np.concatenate(chunks)) for chunks in parts]


def task_class_counts(labels: np.ndarray, tasks: Sequence[np.ndarray],
                      n_classes: int | None = None) -> np.ndarray:
    """(n_tasks, n_classes) number of examples of each class in each task (for figures)."""
    labels, n_classes = _check_labels(labels, n_classes)
    return np.stack([np.bincount(labels[rows], minlength=n_classes) for rows in tasks])


def task_datasets(dataset: ImageDataset, tasks: Sequence[np.ndarray]) -> list[ImageDataset]:
    """The images of each task, in task order."""
    return [dataset.subset(rows) for rows in tasks]
