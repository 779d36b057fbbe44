"""The continual loop: R-matrix orientation, transfer metrics, files, time budget."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from continual_helpers import toy_mean_response

from calosim.continual.loop import run_continual
from calosim.continual.matrix import RMatrices
from calosim.continual.scenario import energy_scenario
from calosim.continual.strategies.base import Strategy, StrategyContext, StrategyOptions, TaskData
from calosim.data.transforms import ALICE_DEPLOYED
from calosim.metrics.continual import read_r_matrix, transfer_metrics
from calosim.models.base import Batch, GenerativeModel, ModelConfig


@dataclass
class OracleConfig(ModelConfig):
    """No settings: the oracle below has nothing to learn."""


class OracleModel(GenerativeModel):
    """Generates the toy's mean response for particles below the highest energy learnt so
    far and nothing above it: a model that knows exactly the tasks it was trained on."""

    config_class = OracleConfig

    def __init__(self, config: OracleConfig | None = None) -> None:
        super().__init__(config or OracleConfig())
        self.register_buffer("learnt_below", torch.tensor(-np.inf))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (1,)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": batch.images.new_zeros(())}

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        energy = ALICE_DEPLOYED.inverse(conditions)[:, 0]
        mean = torch.from_numpy(toy_mean_response(energy.numpy())).float().log1p()
        return mean * (conditions[:, 0] <= self.learnt_below)[:, None, None]


class OracleStrategy(Strategy):
    name = "oracle"
    model_name = "oracle"

    def learn_task(self, task: TaskData) -> dict[str, float]:
        self.model.learnt_below.fill_(task.energy_range[1])
        return {"loss": 0.0}


def _oracle() -> OracleStrategy:
    return OracleStrategy(OracleModel(), StrategyOptions(), StrategyContext(ALICE_DEPLOYED))


def test_r_matrix_row_is_after_training_and_column_is_the_evaluated_task(toy, tmp_path):
    scenario = energy_scenario(toy, n_tasks=3, seed=2)
    outcome = run_continual(scenario, _oracle(), tmp_path, seed=5)
    matrix = outcome.matrices.run().matrix
    learnt = np.tril(np.ones((3, 3), dtype=bool))  # R[i][j], j <= i: task j was learnt
    assert matrix[learnt].max() < 0.5 * matrix[~learnt].min()
    assert (outcome.matrices.run().baseline > matrix[learnt].max()).all()
    # the oracle never forgets and learns nothing ahead: transfers are exactly zero
    summary = transfer_metrics(outcome.matrices.run())
    assert summary["backward_transfer"] == 0.0 and summary["forgetting"] == 0.0
    assert summary["forward_transfer"] == 0.0
    written = read_r_matrix(tmp_path)
    assert np.array_equal(written.matrix, matrix) and written.tasks == tuple(scenario.names)
    assert written.metric == "wasserstein_mean"
    pooled = read_r_matrix(tmp_path / "pooled_log_w1")
    assert pooled.metric == "pooled_log_w1" and np.isfinite(pooled.matrix).all()
    for name in ("r_matrix.png", "pooled_log_w1/r_matrix.png", "model.pt", "tasks.jsonl",
                 "train.log", "checkpoints/last.pt"):
        assert (tmp_path / name).is_file(), name
    assert len((tmp_path / "train.log").read_text().splitlines()) == 3


def test_time_budget_stops_between_tasks_and_resume_finishes(toy, tmp_path) -> None:
    scenario = energy_scenario(toy, n_tasks=3, seed=2)
    ticks = iter(range(0, 10_000, 50))  # each clock reading is 50 s after the last
    outcome = run_continual(scenario, _oracle(), tmp_path, seed=5, max_minutes=2.0,
                            clock=lambda: float(next(ticks)))
    assert outcome.stop_reason == "time budget" and 0 < outcome.matrices.rows_done < 3
    assert not (tmp_path / "r_matrix.json").exists()  # only a complete matrix is written
    finished = run_continual(scenario, _oracle(), tmp_path, seed=5, resume=True)
    assert finished.matrices.complete and finished.stop_reason == "tasks"
    fresh = run_continual(scenario, _oracle(), tmp_path / "fresh", seed=5)
    assert np.array_equal(finished.matrices.run().matrix, fresh.matrices.run().matrix)


def test_r_matrices_keep_rows_in_place_and_round_trip() -> None:
    matrices = RMatrices(["a", "b"], metrics=("wasserstein_mean", "pooled_log_w1"))
    assert matrices.rows_done == 0 and not matrices.complete
    matrices.record_baseline({"wasserstein_mean": [9.0, 9.0], "pooled_log_w1": [1.0, 1.0]})
    matrices.record(0, {"wasserstein_mean": [1.0, 5.0], "pooled_log_w1": [0.1, 0.5]})
    with pytest.raises(Exception, match="2 rows"):
        matrices.summary()
    matrices.record(1, {"wasserstein_mean": [2.0, 1.5], "pooled_log_w1": [0.2, 0.15]})
    matrices.record_floors({"wasserstein_mean": [0.5, 1.5]})
    summaries = RMatrices.from_state(matrices.state_dict()).summary()
    assert set(summaries) == {"wasserstein_mean", "pooled_log_w1", "wasserstein_mean_ratio"}
    # each column over its own floor: task a 2.0 / 0.5, task b 1.5 / 1.5
    assert summaries["wasserstein_mean_ratio"]["final_average"] == pytest.approx(2.5)
    summary = summaries["wasserstein_mean"]
    assert summary["final_average"] == pytest.approx(1.75)
    assert summary["backward_transfer"] == pytest.approx(-1.0)  # task a: 1.0 -> 2.0
    assert summary["forward_transfer"] == pytest.approx(4.0)  # task b: 9.0 -> 5.0 untrained
    with pytest.raises(ValueError, match="expected 2 values"):
        matrices.record(0, {"wasserstein_mean": [1.0], "pooled_log_w1": [1.0]})
