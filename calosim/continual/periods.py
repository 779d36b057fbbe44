"""Period-by-period continual retraining, the way a deployed simulator is updated:

    calosim train configs/continual/generative_replay.yaml --data period_1.h5 --out RUN --new-period
    calosim train configs/continual/generative_replay.yaml --data period_2.h5 --out RUN --new-period

Each command learns one data-taking period from that period's file alone and continues
the strategy's state. RUN keeps only what the strategy declares it keeps (its checkpoint:
model, condition memory, penalties) and, as evaluation data counted apart, the first
``test_size`` test responses of each period (evaluation/period_K.h5), on which old periods
are scored: an earlier period's file is never opened again. Each period adds its row, and
its column, to the R matrices: R[k-1, k] (the model before period k on period k), the
untrained model's score and the period's noise floor are measured when the period
arrives, so the matrix holds every entry R[i, j] with j <= i + 1. model.pt is the model
after the latest period.

A period's file is split into train/val/test as the K-task benchmark of
calosim.continual.run splits that task (calosim.data.tasks.period_split): with the files
of `calosim split DATA --energy-tasks K` and the same config and seed, the periods give the
benchmark's R matrix on DATA.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calosim.continual.evaluation import (
    EvaluationSet,
    evaluation_sets,
    floor_scores,
    score_tasks,
)
from calosim.continual.loop import (
    CHECKPOINT,
    MODEL_FILE,
    ContinualOutcome,
    learn_and_record,
    load_checkpoint,
)
from calosim.continual.matrix import RMatrices
from calosim.continual.run import (
    ResolvedContinualConfig,
    build_strategy,
    config_for_resume,
    floor_cache_dir,
    resolve_continual_config,
    run_metrics,
)
from calosim.continual.scenario import ContinualTask, Scenario, period_task
from calosim.data.dataset import ZDCDataset
from calosim.errors import CalosimError
from calosim.simulators.base import fresh_seed
from calosim.training.checkpoint import data_fingerprint
from calosim.training.run import TrainResult, apply_overrides, dump_config, load_config
from calosim.training.trainer import write_text_atomic

PERIODS_FILE = "periods.json"
EVALUATION_DIR = "evaluation"


def train_next_period(
    config: str | Path | dict[str, Any],
    *,
    data: Any,
    out_dir: str | Path,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """Learn the period in ``data`` (a file) as the next period of the run in ``out_dir``,
    starting that run when ``out_dir`` holds none; see the module docstring. The config
    must be the run's own (only ``data`` differs)."""
    if not isinstance(data, str | os.PathLike):
        raise CalosimError("a new period needs its data file (--data PERIOD_FILE)")
    run_dir = Path(out_dir)
    periods = read_periods(run_dir)
    raw = apply_overrides(load_config(config), overrides)
    if seed is not None:
        raw["seed"] = seed
    raw["data"] = None  # each period names its own file
    if periods:
        raw = config_for_resume(run_dir, raw, seed_given=seed is not None)
    elif (run_dir / CHECKPOINT).exists():
        raise CalosimError(f"{run_dir}: holds a continual run of one data file, not of periods; "
                           "choose another output directory")
    resolved = resolve_continual_config(raw)
    if resolved.run.seed is None:
        resolved.run.seed = fresh_seed()
    run_seed = int(resolved.run.seed)
    if resolved.run.standardiser != "alice":
        raise CalosimError("period-by-period runs standardise with the fixed `standardiser: "
                           "alice` (a fitted one would look at one period only)")

    dataset = _read_period(Path(data), resolved)
    fingerprint = data_fingerprint(dataset.particles)
    for number, period in enumerate(periods, start=1):
        if period["fingerprint"] == fingerprint:
            raise CalosimError(f"{data}: holds the data of period {number}, already learnt")
    index = len(periods)
    task = period_task(dataset, index, run_seed, resolved.run.split, source=str(data))
    new_set = evaluation_sets([task], resolved.run.test_size)[0]

    strategy = build_strategy(resolved, task.train.particles, run_seed, device, progress)
    untrained = build_strategy(resolved, task.train.particles, run_seed, device, False)
    strategy.context.run_dir = run_dir
    if periods:
        outcome = load_checkpoint(run_dir, strategy, run_seed)
        matrices = outcome.matrices.extended(task.name)
        matrices_before = score_tasks(strategy.simulator(), [new_set], run_seed, index)
        for metric, (value,) in matrices_before.items():
            matrices.values[metric][index - 1, index] = value
        outcome.matrices = matrices
    else:
        outcome = ContinualOutcome(RMatrices([task.name]))
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", dump_config(resolved.to_dict()))
    _record_arrival(outcome.matrices, untrained, new_set, resolved, run_seed, index)
    sets = [*read_evaluation_sets(run_dir, index), new_set]
    _write_evaluation_set(run_dir, index, new_set, str(data))

    learn_and_record(task, strategy, sets, outcome, run_dir, seed=run_seed,
                     data_fingerprint=fingerprint, progress=progress)
    periods.append({"file": str(data), "fingerprint": fingerprint, **_describe(task)})
    write_text_atomic(run_dir / PERIODS_FILE, json.dumps(periods, indent=2) + "\n")
    outcome.matrices.write(run_dir)
    metrics = run_metrics(resolved, [_describe_saved(p) for p in periods], strategy, outcome,
                          str(data), fingerprint, run_seed)
    metrics["evaluation_bytes"] = sum(
        s.particles.nbytes + s.responses.nbytes for s in sets)
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return TrainResult(model_path=run_dir / MODEL_FILE, run_dir=run_dir, metrics=metrics)


def read_periods(run_dir: Path) -> list[dict[str, Any]]:
    """The periods a run has learnt (none for a new run), from its periods.json."""
    path = run_dir / PERIODS_FILE
    if not path.is_file():
        return []
    try:
        periods = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CalosimError(f"{path}: unreadable ({error})") from None
    if not isinstance(periods, list) or not (run_dir / CHECKPOINT).is_file():
        raise CalosimError(f"{run_dir}: not a period-by-period run ({path} without its "
                           f"{CHECKPOINT})")
    return periods


def read_evaluation_sets(run_dir: Path, n_periods: int) -> list[EvaluationSet]:
    """The test sets the run kept of its first ``n_periods`` periods."""
    from calosim.data import read_dataset

    sets = []
    for period in range(n_periods):
        kept = read_dataset(_evaluation_path(run_dir, period))
        sets.append(EvaluationSet(kept.particles, np.asarray(kept.responses)))
    return sets


def _read_period(path: Path, resolved: ResolvedContinualConfig) -> ZDCDataset:
    from calosim.data import read_dataset

    dataset = read_dataset(path, max_rows=resolved.run.max_rows)
    if not dataset.has_responses:
        raise CalosimError(f"{path}: holds particles only, no responses to learn from")
    return dataset


def _record_arrival(matrices: RMatrices, untrained: Any, new_set: EvaluationSet,
                    resolved: ResolvedContinualConfig, seed: int, index: int) -> None:
    """The new period's column entries known before it is learnt: the untrained model's
    scores and, with ``floor: mc``, the period's noise floor."""
    baseline = score_tasks(untrained.simulator(), [new_set], seed, index)
    for metric, (value,) in baseline.items():
        if matrices.baseline[metric] is None:
            matrices.baseline[metric] = np.full(len(matrices.tasks), np.nan)
        matrices.baseline[metric][index] = value
    if resolved.run.floor != "mc":
        return
    floors = floor_scores([new_set], seed, floor_cache_dir(), index)
    for metric, (value,) in floors.items():
        matrices.floors.setdefault(metric, np.full(len(matrices.tasks), np.nan))[index] = value


def _evaluation_path(run_dir: Path, period: int) -> Path:
    return run_dir / EVALUATION_DIR / f"period_{period + 1}.h5"


def _write_evaluation_set(run_dir: Path, period: int, kept: EvaluationSet, source: str) -> None:
    from calosim.data import write_dataset

    path = _evaluation_path(run_dir, period)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dataset(path, ZDCDataset(responses=kept.responses, particles=kept.particles),
                  attrs={"creator": "calosim train --new-period", "evaluation_of": source})


def _describe(task: ContinualTask) -> dict[str, Any]:
    return Scenario(tasks=(task,), seed=0).describe()[0]


def _describe_saved(period: dict[str, Any]) -> dict[str, Any]:
    return {key: period[key] for key in ("name", "energy_gev", "n_train", "n_val", "n_test")}


__all__ = ["read_evaluation_sets", "read_periods", "train_next_period"]
