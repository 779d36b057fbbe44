"""The one continual loop: tasks in order, each learnt by the strategy plug-in, then the
model is scored on every task's test set (one R-matrix row) and checkpointed.

Files in the run directory: checkpoints/last.pt (strategy state, R rows, log: resume
point, after every task), model.pt (the model after the latest task, a model file for
calosim.load), tasks.jsonl (one JSON record per task) and train.log (readable);
strategies that train through the Trainer leave each task's run in tasks/task_K.
A resumed run restarts after the last finished task; the strategy reseeds itself from
(seed, task) at each task, so it follows the very trajectory of an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from calosim.continual.evaluation import (
    PRIMARY_METRIC,
    EvaluationSet,
    evaluation_sets,
    floor_scores,
    score_tasks,
)
from calosim.continual.matrix import RMatrices
from calosim.continual.scenario import ContinualTask, Scenario
from calosim.continual.strategies.base import Strategy, prepare_task
from calosim.errors import CalosimError
from calosim.training.checkpoint import (
    load_training_state,
    save_model_file,
    save_training_state,
)
from calosim.training.trainer import write_text_atomic

CHECKPOINT = Path("checkpoints") / "last.pt"
MODEL_FILE = "model.pt"


@dataclass
class ContinualOutcome:
    """What a continual run did: its R matrices, per-task records and why it stopped."""

    matrices: RMatrices
    task_records: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "tasks"
    seconds: float = 0.0


def run_continual(
    scenario: Scenario,
    strategy: Strategy,
    run_dir: str | Path,
    *,
    seed: int,
    test_size: int | None = 2000,
    resume: bool = False,
    max_minutes: float | None = None,
    progress: bool = False,
    data_fingerprint: str | None = None,
    floors: bool = True,
    floor_cache: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ContinualOutcome:
    """Learn the tasks of ``scenario`` in order with ``strategy``; see the module docstring.

    ``max_minutes``: no new task starts once this much time has passed (a task in
    progress finishes). ``resume``: continue from run_dir's checkpoint. ``floors``: score
    each task's noise floor too (cached in ``floor_cache``), for the ratios to it.
    """
    run_dir = Path(run_dir)
    started = clock()
    sets = evaluation_sets(scenario.tasks, test_size)
    strategy.context.run_dir = run_dir
    if resume:
        outcome = _resume(run_dir, scenario, strategy, seed, data_fingerprint)
    else:
        ensure_new_run(run_dir)
        outcome = ContinualOutcome(RMatrices(scenario.names))
        outcome.matrices.record_baseline(score_tasks(strategy.simulator(), sets, seed))
        if floors:
            outcome.matrices.record_floors(floor_scores(sets, seed, floor_cache))
    run_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if max_minutes is None else started + 60.0 * max_minutes
    for task in scenario.tasks[outcome.matrices.rows_done :]:
        if deadline is not None and clock() >= deadline:
            outcome.stop_reason = "time budget"
            break
        learn_and_record(task, strategy, sets, outcome, run_dir, seed=seed,
                         data_fingerprint=data_fingerprint, progress=progress, clock=clock)
    outcome.seconds = clock() - started
    if outcome.matrices.complete:
        outcome.matrices.write(run_dir)
    return outcome


def learn_and_record(
    task: ContinualTask, strategy: Strategy, sets: Sequence[EvaluationSet],
    outcome: ContinualOutcome, run_dir: Path, *, seed: int, data_fingerprint: Any,
    progress: bool, clock: Callable[[], float] = time.monotonic,
) -> None:
    """Learn ``task`` with ``strategy``, score the model on every test set of ``sets`` (row
    ``task.index`` of the R matrices), then write the model file, the checkpoint and logs."""
    task_started = clock()
    strategy.begin_task(task.index)
    data = prepare_task(task, strategy.context.standardiser)
    losses = strategy.learn_task(data)
    strategy.end_task(data)
    trained = clock()
    scores = score_tasks(strategy.simulator(), sets, seed)
    outcome.matrices.record(task.index, scores)
    record = {
        "task": task.index + 1, "name": task.name, "losses": losses, "scores": scores,
        "train_seconds": trained - task_started, "evaluation_seconds": clock() - trained,
        "memory_bytes": strategy.memory_bytes(),
    }
    outcome.task_records.append(record)
    save_model_file(
        run_dir / MODEL_FILE, strategy.simulator(), data_fingerprint=data_fingerprint,
        seed=seed, extra={"continual": {"strategy": strategy.name, "tasks_learnt":
                                        task.index + 1, "tasks": outcome.matrices.tasks}},
    )
    _save_checkpoint(run_dir, strategy, outcome, seed, data_fingerprint)
    _log(run_dir, record, outcome.matrices, progress)


def ensure_new_run(run_dir: Path) -> None:
    """CalosimError when ``run_dir`` already holds a continual run (not to overwrite it)."""
    if (run_dir / CHECKPOINT).exists():
        raise CalosimError(f"{run_dir}: already holds a continual run; resume it or choose "
                           "another output directory")


def _save_checkpoint(run_dir: Path, strategy: Strategy, outcome: ContinualOutcome,
                     seed: int, data_fingerprint: str | None) -> None:
    save_training_state(run_dir / CHECKPOINT, {
        "strategy_name": strategy.name,
        "strategy": strategy.state_dict(),
        "matrices": outcome.matrices.state_dict(),
        "task_records": outcome.task_records,
        "seed": seed,
        "data_fingerprint": data_fingerprint,
    })
    text = "".join(json.dumps(record) + "\n" for record in outcome.task_records)
    write_text_atomic(run_dir / "tasks.jsonl", text)


def _resume(run_dir: Path, scenario: Scenario, strategy: Strategy, seed: int,
            data_fingerprint: str | None) -> ContinualOutcome:
    path = run_dir / CHECKPOINT
    outcome = load_checkpoint(run_dir, strategy, seed, data_fingerprint)
    if outcome.matrices.tasks != scenario.names:
        raise CalosimError(f"{path}: the run's tasks {outcome.matrices.tasks} differ from this "
                           f"data's {scenario.names}; resume it with its own data")
    return outcome


def load_checkpoint(run_dir: Path, strategy: Strategy, seed: int,
                    data_fingerprint: str | None = None) -> ContinualOutcome:
    """The strategy's state (put in ``strategy``) and the records of the run in ``run_dir``;
    ``data_fingerprint``, when given, must be the one the run was trained on."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise CalosimError(f"{run_dir}: nothing to resume (no {CHECKPOINT})")
    state = load_training_state(path)
    if state.get("seed") != seed or state.get("strategy_name") != strategy.name:
        raise CalosimError(f"{path}: a run of strategy {state.get('strategy_name')!r} with seed "
                           f"{state.get('seed')}, not {strategy.name!r} with seed {seed}")
    if data_fingerprint is not None and state.get("data_fingerprint") != data_fingerprint:
        raise CalosimError(f"{path}: the run was trained on other data; resume it with its own")
    strategy.load_state_dict(state["strategy"])
    return ContinualOutcome(RMatrices.from_state(state["matrices"]), list(state["task_records"]))


def _log(run_dir: Path, record: Mapping[str, Any], matrices: RMatrices, progress: bool) -> None:
    row = record["scores"][PRIMARY_METRIC]
    losses = record["losses"]
    # strategies with phases prefix their losses; the last phase's loss is the one shown
    loss = next((losses[k] for k in ("loss", "global_loss", "local_loss") if k in losses),
                float("nan"))
    floor = matrices.floors.get(PRIMARY_METRIC)
    ratios = "" if floor is None else (
        f"  / floor [{', '.join(f'{v / f:.3g}' for v, f in zip(row, floor, strict=True))}]")
    line = (
        f"task {record['task']}/{len(matrices.tasks)} ({record['name']}): loss {loss:.5g}"
        f"  W1 per task [{', '.join(f'{v:.3g}' for v in row)}]{ratios}"
        f"  ({record['train_seconds']:.1f} s + {record['evaluation_seconds']:.1f} s)"
    )
    with open(run_dir / "train.log", "a", encoding="utf-8") as stream:
        stream.write(line + "\n")
    if progress:
        tqdm.write(line)
