"""Scores of a simulator on every task's test set: the entries of one R-matrix row.

Each task is generated from its own seed, derived from (run seed, task), and the same
seed is used after every task, so two rows differ only because the model changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calosim.continual.scenario import ContinualTask
from calosim.metrics.zdc import channel_wasserstein, pooled_log_wasserstein
from calosim.simulators.base import DetectorSimulator

# Mean per-channel W1 on photon counts (the field's metric), and the pooled W1 of the log
# channels the Multiband VAE paper reports (thesis table 9.4.1).
PRIMARY_METRIC = "wasserstein_mean"
METRICS = (PRIMARY_METRIC, "pooled_log_w1")


@dataclass(frozen=True)
class EvaluationSet:
    """The particles and real responses a task is scored on."""

    particles: np.ndarray
    responses: np.ndarray


def evaluation_sets(tasks: Sequence[ContinualTask], size: int | None) -> list[EvaluationSet]:
    """The first ``size`` test rows of each task (all of them for None)."""
    return [
        EvaluationSet(np.asarray(t.test.particles[:size]), np.asarray(t.test.responses[:size]))
        for t in tasks
    ]


def evaluation_seed(seed: int, task: int) -> int:
    """The generation seed of ``task``'s test set (31 bits, fixed for the run)."""
    state = np.random.SeedSequence(seed, spawn_key=(task, 7)).generate_state(1, np.uint32)
    return int(state[0] >> np.uint32(1))


def score_tasks(
    simulator: DetectorSimulator, sets: Sequence[EvaluationSet], seed: int
) -> dict[str, list[float]]:
    """Every metric of METRICS on every test set: {metric: [one value per task]}."""
    scores: dict[str, list[float]] = {metric: [] for metric in METRICS}
    for task, test in enumerate(sets):
        generated = simulator.simulate(test.particles, seed=evaluation_seed(seed, task))
        scores[PRIMARY_METRIC].append(float(channel_wasserstein(test.responses, generated).mean))
        scores["pooled_log_w1"].append(float(pooled_log_wasserstein(test.responses, generated)))
    return scores
