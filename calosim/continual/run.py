"""Run a continual-learning config: the function behind `calosim train` for configs with a
top-level ``continual:`` section.

    continual:                 # ContinualSection
      strategy: multiband      # one of calosim.continual.strategies.STRATEGIES
      n_tasks: 5               # energy tasks, low to high
      condition_memory: 2000   # particles kept per past task (replay strategies)
      options: {gamma: 0.9}    # the strategy's own options
    model: {name: multiband_vae, latent_dim: 8, ...}   # the strategy's model, its sizes
    training: {epochs: 12, batch_size: 256, learning_rate: 1.0e-3}   # per task
    data: zn.h5                # ContinualRunOptions: data, seed, max_rows, split,
    seed: 1                    #   test_size, standardiser, round_counts, rounding, floor

Strategies written for one model (multiband, lifelong_vae, boovae, binplay) name it; the
plug-ins of the Trainer (naive, joint, generative_replay, ewc, si, mergan) train any
registered model, with the ``training:`` section of calosim.training.TrainingConfig per
task (epochs, early stopping, moving average and the model's refinement phase).

The run directory receives config.yaml (resolved, with the seed), the files of
calosim.continual.loop, r_matrix.json / r_matrix.png (mean per-channel W1) and
channel_mae/ and pooled_log_w1/r_matrix.{json,png} once every task is learnt, with the
ratios to the noise floor of each task (``floor: mc``) in <metric>_ratio/, and
metrics.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from calosim.continual.loop import MODEL_FILE, ContinualOutcome, ensure_new_run, run_continual
from calosim.continual.scenario import energy_scenario
from calosim.continual.strategies import Strategy, strategy_class
from calosim.continual.strategies.base import StrategyContext
from calosim.errors import CalosimError
from calosim.models.base import config_from_dict, config_to_dict, resolve_device
from calosim.models.registry import build_model, model_classes
from calosim.simulators.base import fresh_seed
from calosim.training.checkpoint import data_fingerprint
from calosim.training.run import (
    TrainResult,
    apply_overrides,
    dump_config,
    load_config,
    pop_model_section,
    pop_section,
)
from calosim.training.trainer import TrainingConfig, write_text_atomic


@dataclass
class ContinualSection:
    """The ``continual:`` section."""

    strategy: str = "multiband"
    n_tasks: int = 5
    condition_memory: int = 2000
    options: Any = None

    def __post_init__(self) -> None:
        if self.n_tasks < 1:
            raise ValueError(f"n_tasks must be at least 1, got {self.n_tasks}")
        if self.condition_memory < 1:
            raise ValueError(f"condition_memory must be at least 1, got {self.condition_memory}")
        if self.options is not None and not isinstance(self.options, Mapping):
            raise ValueError("options must be a mapping of the strategy's options")


@dataclass
class ContinualRunOptions:
    """Top-level run settings of a continual config."""

    data: str | None = None
    seed: int | None = None
    max_rows: int | None = None
    split: tuple[float, ...] = (0.8, 0.1, 0.1)
    test_size: int | None = 2000
    standardiser: Literal["alice", "first_task"] = "alice"
    round_counts: bool = True
    rounding: Literal["nearest", "stochastic"] = "nearest"
    # mc: each task's noise floor from a second simulation by the embedded Monte Carlo
    # (data it made); none: data of another simulation, whose floor it cannot give
    floor: Literal["mc", "none"] = "mc"

    def __post_init__(self) -> None:
        if self.max_rows is not None and self.max_rows < 10:
            raise ValueError(f"max_rows must be at least 10, got {self.max_rows}")
        if self.test_size is not None and self.test_size < 2:
            raise ValueError(f"test_size must be at least 2, got {self.test_size}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must lie in [0, 2**63), got {self.seed}")


@dataclass
class ResolvedContinualConfig:
    """A continual config checked and split into its typed parts."""

    continual: ContinualSection
    strategy: type[Strategy]
    options: Any
    model_name: str
    model: Any
    training: TrainingConfig
    run: ContinualRunOptions

    def to_dict(self) -> dict[str, Any]:
        """The plain form written to config.yaml (every default made explicit)."""
        return {
            "continual": {**config_to_dict(self.continual),
                          "options": config_to_dict(self.options)},
            "model": {"name": self.model_name, **config_to_dict(self.model)},
            "training": config_to_dict(self.training),
            **config_to_dict(self.run),
        }


def is_continual_config(config: Mapping[str, Any]) -> bool:
    """Whether a plain config describes a continual run (has a ``continual:`` section)."""
    return "continual" in config


def resolve_continual_config(config: Mapping[str, Any]) -> ResolvedContinualConfig:
    """Check a plain continual config; one-line CalosimError on unknown keys or bad values."""
    config = dict(config)
    section = config.pop("continual", None)
    if not isinstance(section, Mapping):
        raise CalosimError("config: continual must be a mapping (strategy, n_tasks, options)")
    continual = config_from_dict(ContinualSection, section, "continual")
    strategy = strategy_class(continual.strategy)
    options = config_from_dict(strategy.options_class, continual.options, "continual.options")
    name, model_values = pop_model_section(config, strategy.model_name)
    if strategy.model_name is not None and name != strategy.model_name:
        raise CalosimError(f"config: strategy {strategy.name!r} trains model "
                           f"{strategy.model_name!r}, not {name!r}")
    config_class, _ = model_classes(name)
    model = config_from_dict(config_class, model_values, "model")
    training = config_from_dict(TrainingConfig, pop_section(config, "training"), "training")
    run = config_from_dict(ContinualRunOptions, config, "config")
    return ResolvedContinualConfig(continual, strategy, options, name, model, training, run)


def train_continual_from_config(
    config: str | Path | Mapping[str, Any],
    *,
    data: Any = None,
    out_dir: str | Path,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    max_minutes: float | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """Run the continual config into ``out_dir`` (same signature as train_from_config).

    ``data``: a dataset file or a ZDCDataset (default: the config's ``data:``).
    ``seed``: overrides the config's; None there too draws one, recorded in config.yaml.
    ``max_minutes``: no new task starts after this time. ``resume``: continue the run in
    ``out_dir`` after its last finished task, with its own config (only ``data`` may be
    given anew, and it must hold the same data).
    """
    run_dir = Path(out_dir)
    raw = apply_overrides(load_config(config), overrides)
    if seed is not None:
        raw["seed"] = seed
    if isinstance(data, str | os.PathLike):
        raw["data"] = str(data)
    if resume:
        raw = config_for_resume(run_dir, raw, seed_given=seed is not None)
    resolved = resolve_continual_config(raw)
    if resolved.run.seed is None:
        resolved.run.seed = fresh_seed()
    run_seed = int(resolved.run.seed)

    dataset, source = _load_dataset(data, resolved.run)
    scenario = energy_scenario(dataset, resolved.continual.n_tasks, run_seed,
                               resolved.run.split, source=source)
    strategy = build_strategy(resolved, scenario.tasks[0].train.particles, run_seed, device,
                              progress)
    fingerprint = data_fingerprint(dataset.particles)
    if not resume:
        ensure_new_run(run_dir)
        write_text_atomic(run_dir / "config.yaml", dump_config(resolved.to_dict()))
    outcome = run_continual(
        scenario, strategy, run_dir, seed=run_seed, test_size=resolved.run.test_size,
        resume=resume, max_minutes=max_minutes, progress=progress,
        data_fingerprint=fingerprint, floors=resolved.run.floor == "mc",
        floor_cache=floor_cache_dir(),
    )
    metrics = run_metrics(resolved, scenario.describe(), strategy, outcome, source, fingerprint,
                          run_seed)
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return TrainResult(model_path=run_dir / MODEL_FILE, run_dir=run_dir, metrics=metrics)


def config_for_resume(run_dir: Path, raw: dict[str, Any], *, seed_given: bool) -> dict[str, Any]:
    """The run's own config; the new one may differ only in ``data``."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise CalosimError(f"{run_dir}: nothing to resume (no config.yaml)")
    saved = load_config(saved_path)
    if not seed_given and raw.get("seed") is None:
        raw = {**raw, "seed": saved.get("seed")}
    if raw.get("data") is None:
        raw = {**raw, "data": saved.get("data")}
    new = resolve_continual_config(raw).to_dict()
    changed = sorted(key for key in set(saved) | set(new)
                     if key != "data" and saved.get(key) != new.get(key))
    if changed:
        raise CalosimError(f"{run_dir}: cannot resume with a different config ({changed[0]} "
                           "differs); only data may be given anew")
    return new


def _load_dataset(data: Any, run: ContinualRunOptions) -> tuple[Any, str]:
    from calosim.data import read_dataset

    if data is not None and not isinstance(data, str | os.PathLike):
        dataset = data if run.max_rows is None else data.subset(slice(0, run.max_rows))
        return dataset, "the given dataset"
    path = data if data is not None else run.data
    if path is None:
        raise CalosimError("no training data: give a data file or set `data:` in the config")
    return read_dataset(path, max_rows=run.max_rows), str(path)


def build_strategy(resolved: ResolvedContinualConfig, first_particles: Any, seed: int,
                   device: str, progress: bool) -> Strategy:
    """The strategy of the config around its freshly built model (seeded by ``seed``);
    ``first_particles``: the first task's training particles, for a fitted standardiser."""
    from calosim.data.transforms import ALICE_DEPLOYED, ParticleStandardiser

    standardiser = (ALICE_DEPLOYED if resolved.run.standardiser == "alice"
                    else ParticleStandardiser.fit(first_particles))
    torch_device = resolve_device(device)
    context = StrategyContext(
        standardiser=standardiser, training=resolved.training, device=torch_device,
        seed=seed, condition_memory=resolved.continual.condition_memory,
        round_counts=resolved.run.round_counts, rounding=resolved.run.rounding,
        progress=progress, model_name=resolved.model_name,
    )
    torch.manual_seed(seed)
    model = build_model(resolved.model_name, resolved.model)
    return resolved.strategy(model, resolved.options, context)


def floor_cache_dir() -> Path:
    """Where the noise floors of test sets are cached (beside the other caches)."""
    from calosim.metrics.classifier import cache_root

    return cache_root() / "floors"


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def run_metrics(
    resolved: ResolvedContinualConfig, tasks: list[dict[str, Any]], strategy: Strategy,
    outcome: ContinualOutcome, source: str, fingerprint: str, seed: int,
) -> dict[str, Any]:
    """metrics.json: transfer metrics, matrices, per-task records, costs, provenance."""
    matrices = outcome.matrices
    return {
        "strategy": strategy.name,
        "model": resolved.model_name,
        "seed": seed,
        "stop_reason": outcome.stop_reason,
        "tasks_learnt": matrices.rows_done,
        "summary": matrices.summary() if matrices.complete else None,
        # NaN (rows not yet learnt) as null, so the file stays strict JSON
        **{key: _nan_to_none(value) for key, value in matrices.state_dict().items()
           if key in ("values", "baseline", "floors")},
        "memory_bytes": strategy.memory_bytes(),
        "model_parameters": sum(p.numel() for p in strategy.model.parameters()),
        "train_seconds": sum(r["train_seconds"] for r in outcome.task_records),
        "seconds_this_call": outcome.seconds,
        "scenario": tasks,
        "data": {"path": source, "fingerprint": fingerprint},
        "epochs_per_task": resolved.training.epochs,
    }
