"""R matrices of a continual run as it goes, and their files.

R[i, j] is a metric on task j's test set after training task i: row i is filled when
task i is done. The baseline (the untrained model on every task) gives the forward
transfer. The JSON layout, its checks and the transfer metrics are those of
calosim.metrics.continual; the heat map is calosim.report.figures_continual's. The
primary metric goes to ``run_dir/r_matrix.json`` (and r_matrix.png), each other metric
to ``run_dir/<metric>/r_matrix.json``. With floors (the same metric between the test
responses and a second Monte Carlo simulation of the same particles) each matrix also
goes out as its ratio to the floor of each column, ``run_dir/<metric>_ratio/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calosim.continual.evaluation import METRICS, PRIMARY_METRIC
from calosim.data.formats import atomic_output
from calosim.errors import CalosimError
from calosim.metrics.continual import ContinualRun, transfer_metrics, write_r_matrix


class RMatrices:
    """One T x T matrix per metric (NaN until measured) and the untrained baseline."""

    def __init__(self, tasks: Sequence[str], metrics: Sequence[str] = METRICS) -> None:
        self.tasks = list(tasks)
        self.metrics = list(metrics)
        n = len(self.tasks)
        self.values = {metric: np.full((n, n), np.nan) for metric in self.metrics}
        self.baseline: dict[str, np.ndarray | None] = {metric: None for metric in self.metrics}
        self.floors: dict[str, np.ndarray] = {}

    @property
    def rows_done(self) -> int:
        """How many rows (tasks trained) hold values."""
        filled = ~np.isnan(self.values[self.metrics[0]]).all(axis=1)
        return int(filled.sum())

    @property
    def complete(self) -> bool:
        return self.rows_done == len(self.tasks)

    def record(self, after_task: int, scores: Mapping[str, Sequence[float]]) -> None:
        """Row ``after_task``: {metric: one value per task}, as evaluation.score_tasks gives."""
        for metric in self.metrics:
            self.values[metric][after_task] = self._row(scores, metric)

    def record_baseline(self, scores: Mapping[str, Sequence[float]]) -> None:
        """The untrained model's scores, one per task."""
        for metric in self.metrics:
            self.baseline[metric] = self._row(scores, metric)

    def record_floors(self, scores: Mapping[str, Sequence[float]]) -> None:
        """The noise floor of each metric on each task's test set."""
        self.floors = {metric: self._row(scores, metric) for metric in self.metrics
                       if metric in scores}

    def ratios(self) -> dict[str, ContinualRun]:
        """Each metric with a floor as its ratio to that floor, column by column."""
        return {
            f"{metric}_ratio": ContinualRun(
                matrix=self.values[metric] / floor[None, :], metric=f"{metric}_ratio",
                tasks=tuple(self.tasks),
                baseline=None if self.baseline[metric] is None
                else self.baseline[metric] / floor,
            )
            for metric, floor in self.floors.items()
        }

    def extended(self, task: str) -> RMatrices:
        """A copy with one more task (its column and row unmeasured, its floor unknown)."""
        grown = RMatrices([*self.tasks, task], self.metrics)
        n = len(self.tasks)
        for metric in self.metrics:
            grown.values[metric][:n, :n] = self.values[metric]
            if self.baseline[metric] is not None:
                grown.baseline[metric] = np.append(self.baseline[metric], np.nan)
        grown.floors = {m: np.append(f, np.nan) for m, f in self.floors.items()}
        return grown

    def _row(self, scores: Mapping[str, Sequence[float]], metric: str) -> np.ndarray:
        row = np.asarray(scores[metric], dtype=np.float64)
        if row.shape != (len(self.tasks),):
            raise ValueError(f"{metric}: expected {len(self.tasks)} values, got {row.shape}")
        return row

    def run(self, metric: str = PRIMARY_METRIC) -> ContinualRun:
        """The matrix of ``metric`` as a ContinualRun (lower is better)."""
        return ContinualRun(matrix=self.values[metric].copy(), metric=metric,
                            tasks=tuple(self.tasks), baseline=self.baseline[metric])

    def summary(self) -> dict[str, dict[str, Any]]:
        """Transfer metrics of every metric's matrix (a complete run only)."""
        if not self.complete:
            raise CalosimError(f"the R matrix has {self.rows_done} of {len(self.tasks)} rows")
        runs = {metric: self.run(metric) for metric in self.metrics} | self.ratios()
        return {name: transfer_metrics(run) for name, run in runs.items()}

    def write(self, run_dir: str | Path) -> list[Path]:
        """r_matrix.json and r_matrix.png per metric (see the module docstring)."""
        from calosim.report.figures_continual import R_MATRIX_PNG, r_matrix_figure

        written = []
        runs = {metric: self.run(metric) for metric in self.metrics} | self.ratios()
        for metric, run in runs.items():
            where = Path(run_dir) if metric == PRIMARY_METRIC else Path(run_dir) / metric
            where.mkdir(parents=True, exist_ok=True)
            written.append(write_r_matrix(where, run.matrix, metric, run.tasks,
                                          baseline=run.baseline))
            figure = r_matrix_figure(run)
            with atomic_output(where / R_MATRIX_PNG) as temporary:
                figure.savefig(temporary, format="png", dpi=110)
            written.append(where / R_MATRIX_PNG)
        return written

    def state_dict(self) -> dict[str, Any]:
        """Plain lists (NaN kept as float nan) for a checkpoint."""
        return {
            "tasks": list(self.tasks),
            "values": {m: self.values[m].tolist() for m in self.metrics},
            "baseline": {m: None if b is None else b.tolist() for m, b in self.baseline.items()},
            "floors": {m: f.tolist() for m, f in self.floors.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RMatrices:
        matrices = cls(state["tasks"], list(state["values"]))
        for metric, values in state["values"].items():
            matrices.values[metric] = np.asarray(values, dtype=np.float64)
        for metric, values in state["baseline"].items():
            matrices.baseline[metric] = None if values is None else np.asarray(values, float)
        matrices.floors = {m: np.asarray(f, float) for m, f in state.get("floors", {}).items()}
        return matrices
