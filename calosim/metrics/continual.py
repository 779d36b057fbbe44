"""Continual-learning results: the R matrix of a run directory and its transfer metrics.

A continual run trains on tasks 1..T one after the other and, after each, evaluates the
model on every task. It records the results as ``r_matrix.json`` in its run directory:

    {
      "metric": "wasserstein_mean",          # name of the metric in the matrix
      "tasks": ["0-20 %", ...],              # T task names, in training order
      "matrix": [[R00, R01, ...], ...],      # T x T, R[i][j] = metric on task j after
                                             #   training task i (null where not measured)
      "baseline": [b0, b1, ...],             # optional: metric of an untrained model per task
      "lower_is_better": true                # optional, default true (distances, losses)
    }

Transfer metrics (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory"; Chaudhry et al.
2018, "Riemannian Walk") are written with the sign of an improvement: for a
lower-is-better metric, going from a to b improves by a - b, for a higher-is-better one
by b - a. Hence, whatever the metric:
- final average: mean of the last row (the metric itself, in its own direction);
- backward transfer: mean over old tasks j < T-1 of the improvement from R[j][j] (just
  after learning j) to R[T-1][j] (at the end); negative means the model forgot;
- forgetting: mean over old tasks of the largest loss from the best value reached after
  learning j (rows j..T-2) to the final value; positive means the model forgot;
- forward transfer: mean over tasks j >= 1 of the improvement of R[j-1][j] (before
  training on j) over the baseline b_j; positive means earlier tasks helped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calosim.errors import DataFormatError

R_MATRIX_FILE = "r_matrix.json"


@dataclass(frozen=True)
class ContinualRun:
    """The R matrix of a continual run and how to read it.

    ``matrix``: (T, T) float64, NaN where not measured. ``baseline``: (T,) or None.
    """

    matrix: np.ndarray
    metric: str
    tasks: tuple[str, ...]
    baseline: np.ndarray | None = None
    lower_is_better: bool = True

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)


def r_matrix_path(run: str | os.PathLike[str]) -> Path:
    """``run/r_matrix.json`` for a run directory, or ``run`` itself for a file."""
    path = Path(run)
    return path / R_MATRIX_FILE if path.is_dir() else path


def write_r_matrix(
    run_dir: str | os.PathLike[str],
    matrix: Sequence[Sequence[float | None]] | np.ndarray,
    metric: str,
    tasks: Sequence[str],
    *,
    baseline: Sequence[float] | None = None,
    lower_is_better: bool = True,
) -> Path:
    """Write ``run_dir/r_matrix.json`` atomically (unmeasured entries: None or NaN).

    The values are checked as read_r_matrix checks them. Returns the written path.
    """
    from calosim.data.formats import atomic_output

    path = Path(run_dir) / R_MATRIX_FILE
    payload: dict[str, Any] = {
        "metric": metric,
        "tasks": list(tasks),
        "matrix": [[_json_number(v) for v in row] for row in np.asarray(matrix, dtype=float)],
        "lower_is_better": bool(lower_is_better),
    }
    if baseline is not None:
        payload["baseline"] = [_json_number(v) for v in np.asarray(baseline, dtype=float)]
    parse_r_matrix(payload, path)
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_r_matrix(run: str | os.PathLike[str]) -> ContinualRun:
    """Read the R matrix of a run directory (or an r_matrix.json file itself).

    Raises DataFormatError naming the file when it is missing, not JSON or not in the
    layout of this module's docstring.
    """
    path = r_matrix_path(run)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (a continual run directory holds "
                              f"{R_MATRIX_FILE})")
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFormatError(f"{path}: cannot read the R matrix ({error})") from None
    return parse_r_matrix(payload, path)


def parse_r_matrix(payload: Any, source: str | os.PathLike[str]) -> ContinualRun:
    """A ContinualRun from the decoded JSON ``payload``; errors name ``source``."""
    if not isinstance(payload, dict):
        raise DataFormatError(f"{source}: expected a JSON object with matrix, metric, tasks")
    missing = [key for key in ("matrix", "metric", "tasks") if key not in payload]
    if missing:
        raise DataFormatError(f"{source}: missing key(s) {', '.join(missing)}")
    matrix = _number_array(payload["matrix"], source, "matrix", ndim=2)
    n_tasks = len(matrix)
    if matrix.shape != (n_tasks, n_tasks) or n_tasks == 0:
        raise DataFormatError(f"{source}: matrix must be a non-empty T x T list of lists, "
                              f"got shape {matrix.shape}")
    tasks = payload["tasks"]
    if not isinstance(tasks, list) or len(tasks) != n_tasks:
        raise DataFormatError(f"{source}: tasks must list {n_tasks} names, one per matrix row")
    if not (np.isfinite(np.diag(matrix)).all() and np.isfinite(matrix[-1]).all()):
        raise DataFormatError(f"{source}: the diagonal and the last row of the matrix must "
                              "hold numbers (every task is evaluated after its training and "
                              "at the end)")
    baseline = None
    if payload.get("baseline") is not None:
        baseline = _number_array(payload["baseline"], source, "baseline", ndim=1)
        if baseline.shape != (n_tasks,):
            raise DataFormatError(f"{source}: baseline must hold {n_tasks} values, "
                                  f"got {len(baseline)}")
    lower = payload.get("lower_is_better", True)
    if not isinstance(lower, bool):
        raise DataFormatError(f"{source}: lower_is_better must be true or false")
    return ContinualRun(
        matrix=matrix, metric=str(payload["metric"]), tasks=tuple(str(t) for t in tasks),
        baseline=baseline, lower_is_better=lower,
    )


def _number_array(value: Any, source: Any, key: str, *, ndim: int) -> np.ndarray:
    """``value`` (nested lists of numbers or null) as float64 with NaN for null."""
    try:
        array = np.array(
            value if ndim == 1 else [list(row) for row in value], dtype=np.float64
        )
    except (TypeError, ValueError):
        raise DataFormatError(f"{source}: {key} must hold numbers or null") from None
    if array.ndim != ndim:
        raise DataFormatError(f"{source}: {key} must be a {ndim}-D list, got shape "
                              f"{array.shape}")
    if np.isinf(array).any():
        raise DataFormatError(f"{source}: {key} holds infinite values")
    return array


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _improvement(run: ContinualRun, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How much ``after`` improves on ``before`` in the metric's own direction."""
    return before - after if run.lower_is_better else after - before


def final_average(run: ContinualRun) -> float:
    """Mean metric over all tasks after training the last one."""
    return float(run.matrix[-1].mean())


def backward_transfer(run: ContinualRun) -> float | None:
    """Mean improvement of each old task from just after learning it to the end.

    Negative: forgetting. None for a single task.
    """
    last = run.n_tasks - 1
    if last == 0:
        return None
    old = np.arange(last)
    return float(_improvement(run, run.matrix[old, old], run.matrix[last, old]).mean())


def forgetting(run: ContinualRun) -> float | None:
    """Mean over old tasks of the largest loss from their best value to the final one.

    The best value is taken over the rows after the task was learned (j..T-2), ignoring
    unmeasured entries; positive means forgotten. None for a single task.
    """
    last = run.n_tasks - 1
    if last == 0:
        return None
    losses = []
    for task in range(last):
        history = run.matrix[task:last, task]
        history = history[np.isfinite(history)]
        best = history.min() if run.lower_is_better else history.max()
        losses.append(-_improvement(run, best, run.matrix[last, task]))
    return float(np.mean(losses))


def forward_transfer(run: ContinualRun) -> float | None:
    """Mean improvement of R[j-1][j] (before training on j) over the baseline b_j.

    None without a baseline, for a single task or when R[j-1][j] was not measured.
    """
    if run.baseline is None or run.n_tasks < 2:
        return None
    tasks = np.arange(1, run.n_tasks)
    before_training = run.matrix[tasks - 1, tasks]
    if not np.isfinite(before_training).all() or not np.isfinite(run.baseline[tasks]).all():
        return None
    return float(_improvement(run, run.baseline[tasks], before_training).mean())


def transfer_metrics(run: ContinualRun) -> dict[str, Any]:
    """JSON-ready transfer metrics: final_average, backward_transfer, forgetting,
    forward_transfer (None where undefined), with metric, tasks and lower_is_better."""
    return {
        "metric": run.metric,
        "tasks": list(run.tasks),
        "lower_is_better": run.lower_is_better,
        "final_average": final_average(run),
        "backward_transfer": backward_transfer(run),
        "forgetting": forgetting(run),
        "forward_transfer": forward_transfer(run),
    }
