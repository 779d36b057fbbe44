"""R matrices of a continual run as it goes, and their files.

R[i, j] is a metric on task j's test set after training task i: row i is filled when
task i is done. The baseline (the untrained model on every task) gives the forward
transfer. The JSON layout, its checks and the transfer metrics are those of
calosim.metrics.continual; the heat map is calosim.report.figures_continual's. The
primary metric goes to ``run_dir/r_matrix.json`` (and r_matrix.png), each other metric
to ``run_dir/<metric>/r_matrix.json``.
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
        return {metric: transfer_metrics(self.run(metric)) for metric in self.metrics}

    def write(self, run_dir: str | Path) -> list[Path]:
        """r_matrix.json and r_matrix.png per metric (see the module docstring)."""
        from calosim.report.figures_continual import R_MATRIX_PNG, r_matrix_figure

        written = []
        for metric in self.metrics:
            where = Path(run_dir) if metric == PRIMARY_METRIC else Path(run_dir) / metric
            where.mkdir(parents=True, exist_ok=True)
            run = self.run(metric)
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
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RMatrices:
        matrices = cls(state["tasks"], list(state["values"]))
        for metric, values in state["values"].items():
            matrices.values[metric] = np.asarray(values, dtype=np.float64)
        for metric, values in state["baseline"].items():
            matrices.baseline[metric] = None if values is None else np.asarray(values, float)
        return matrices
