"""Scores of a simulator on every task's test set: the entries of one R-matrix row.

Each task is generated from its own seed, derived from (run seed, task), and the same
seed is used after every task, so two rows differ only because the model changed. The
noise floor of a task is the same metrics between its test responses and a second
simulation of its test particles by the embedded Monte Carlo (the data's own simulator,
for data it made); it is computed once per test set and seed and cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calosim.continual.scenario import ContinualTask
from calosim.metrics.zdc import channel_mae, channel_wasserstein, pooled_log_wasserstein
from calosim.simulators.base import DetectorSimulator

# Mean per-channel W1 on photon counts (the field's metric), the channel MAE (per
# particle), and the pooled W1 of the log channels the Multiband VAE paper reports
# (Deja et al. 2021, "Multiband VAE"; thesis table 9.4.1).
PRIMARY_METRIC = "wasserstein_mean"
METRICS = (PRIMARY_METRIC, "channel_mae", "pooled_log_w1")
FLOOR_PURPOSE = 8


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


def evaluation_seed(seed: int, task: int, purpose: int = 7) -> int:
    """The generation seed of ``task``'s test set (31 bits, fixed for the run)."""
    state = np.random.SeedSequence(seed, spawn_key=(task, purpose)).generate_state(1, np.uint32)
    return int(state[0] >> np.uint32(1))


def scores_of(real: np.ndarray, generated: np.ndarray) -> dict[str, float]:
    """Every metric of METRICS between real and generated responses of the same particles."""
    return {
        PRIMARY_METRIC: float(channel_wasserstein(real, generated).mean),
        "channel_mae": float(channel_mae(real, generated)),
        "pooled_log_w1": float(pooled_log_wasserstein(real, generated)),
    }


def score_tasks(
    simulator: DetectorSimulator, sets: Sequence[EvaluationSet], seed: int,
    first_task: int = 0,
) -> dict[str, list[float]]:
    """Every metric of METRICS on every test set, those of tasks ``first_task``, ... :
    {metric: [one value per task]}."""
    scores: dict[str, list[float]] = {metric: [] for metric in METRICS}
    for task, test in enumerate(sets, start=first_task):
        generated = simulator.simulate(test.particles, seed=evaluation_seed(seed, task),
                                       allow_out_of_range=True)  # the data's own particles
        for metric, value in scores_of(test.responses, generated).items():
            scores[metric].append(value)
    return scores


def floor_scores(
    sets: Sequence[EvaluationSet], seed: int, cache_dir: Path | None, first_task: int = 0
) -> dict[str, list[float]]:
    """The noise floor of every metric on every test set, those of tasks ``first_task``,
    ... (see the module docstring), read from ``cache_dir`` when a run on the same test
    sets and seed already computed it."""
    from calosim._version import __version__
    from calosim.data.formats import atomic_output
    from calosim.simulators.loading import load

    scores: dict[str, list[float]] = {metric: [] for metric in METRICS}
    monte_carlo: DetectorSimulator | None = None
    for task, test in enumerate(sets, start=first_task):
        floor_seed = evaluation_seed(seed, task, FLOOR_PURPOSE)
        key = hashlib.sha256()
        for part in (test.particles, test.responses):
            key.update(np.ascontiguousarray(part, dtype=np.float32).tobytes())
        key.update(f"{floor_seed} {__version__} {','.join(METRICS)}".encode())
        cached = None if cache_dir is None else cache_dir / f"{key.hexdigest()[:32]}.json"
        values = _read_cached(cached)
        if values is None:
            monte_carlo = monte_carlo or load("mc")
            floor = monte_carlo.simulate(test.particles, seed=floor_seed, allow_out_of_range=True)
            values = scores_of(test.responses, floor)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                with atomic_output(cached) as temporary:
                    temporary.write_text(json.dumps(values) + "\n")
        for metric in METRICS:
            scores[metric].append(float(values[metric]))
    return scores


def _read_cached(path: Path | None) -> dict[str, float] | None:
    """A cached floor, or None when absent or unreadable (it is then computed again)."""
    if path is None or not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        return {metric: float(values[metric]) for metric in METRICS}
    except (OSError, ValueError, KeyError, TypeError):
        return None
