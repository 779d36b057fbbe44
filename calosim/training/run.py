"""Train a model from a YAML config: the function behind `calosim train`.

A config has a ``model:`` section (``name`` from the registry plus that model's
hyper-parameters, or just the name), a ``training:`` section (TrainingConfig) and a few
run options (RunOptions: data file, seed, split, standardiser, rounding, test size).
The run directory receives config.yaml (resolved, with the seed), split.npz,
train.log, metrics.jsonl, checkpoints/{last,best}.pt (and refined.pt for a model with a
refinement phase), model.pt (the best model, a model file for calosim.load) and
metrics.json (final validation/test scores, timing).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from calosim.data.formats.atomic import atomic_output
from calosim.errors import CalosimError
from calosim.models.base import (
    LearnedSimulator,
    config_from_dict,
    config_to_dict,
    short_repr,
)
from calosim.models.registry import build_model
from calosim.simulators.base import fresh_seed
from calosim.training.checkpoint import data_fingerprint, load_simulator
from calosim.training.distributed import Context, session
from calosim.training.trainer import (
    Trainer,
    TrainingConfig,
    TrainingData,
    score_responses,
    write_text_atomic,
)

# Settings a resumed run may change: how long it goes on, not what it learns. The data
# file may move; the checkpoint's data fingerprint checks it holds the same data.
_RESUMABLE_CHANGES = {
    ("training", "epochs"), ("training", "patience"), ("training", "max_minutes"),
    ("training", "max_steps"), ("training", "refine_share"), ("data",),
}


@dataclass
class RunOptions:
    """Top-level run settings of a config (besides ``model:`` and ``training:``)."""

    data: str | None = None
    seed: int | None = None
    split: tuple[float, ...] = (0.8, 0.1, 0.1)
    standardiser: Literal["fit", "alice"] = "fit"
    round_counts: bool = True
    # stochastic: unbiased channel sums; nearest loses the sparse fractional pixels' photons
    rounding: Literal["nearest", "stochastic"] = "stochastic"
    test_size: int | None = 20000

    def __post_init__(self) -> None:
        fractions = self.split
        if len(fractions) != 3 or min(fractions) < 0 or not 0.99 < sum(fractions) < 1.01:
            raise ValueError(f"split must be 3 fractions >= 0 summing to 1, got {list(fractions)}")
        if self.test_size is not None and self.test_size < 1:
            raise ValueError(f"test_size must be positive, got {self.test_size}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must lie in [0, 2**63), got {self.seed}")


@dataclass
class TrainResult:
    """Where a training run left its model and what it scored."""

    model_path: Path
    run_dir: Path
    metrics: dict[str, Any]


# --------------------------------------------------------------------------- config


class _ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader without aliases: a few bytes of nested aliases expand to gigabytes
    ("billion laughs"), and no calosim config needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in calosim configs",
                self.peek_event().start_mark)
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    """The value of the YAML text of a config or an override (safe, aliases refused)."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def _yaml_problem(error: yaml.YAMLError) -> str:
    where = getattr(error, "problem_mark", None)
    line = f" at line {where.line + 1}" if where is not None else ""
    problem = getattr(error, "problem", None)
    return f"not valid YAML{line}" + (f": {problem}" if problem else "")


def load_config(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A config as a fresh plain dict, from a YAML file or a mapping."""
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config))
    path = Path(config)
    try:
        loaded = parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalosimError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CalosimError(f"{path}: cannot read config ({error})") from None
    except yaml.YAMLError as error:
        raise CalosimError(f"{path}: {_yaml_problem(error)}") from None
    if not isinstance(loaded, dict):
        raise CalosimError(f"{path}: a config must be a YAML mapping of sections")
    return loaded


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set ``a.b=value`` pairs (value parsed as YAML) in a nested config dict."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise CalosimError(f"override {short_repr(override)}: expected key.path=value")
        try:
            value = parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise CalosimError(f"override {short_repr(override)}: the value is "
                               f"{_yaml_problem(error)}") from None
        node = config
        for i, part in enumerate(parts[:-1]):
            if part == "model" and i == 0 and isinstance(node.get(part), str):
                node[part] = {"name": node[part]}
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                section = ".".join(parts[: i + 1])
                raise CalosimError(f"override {short_repr(override)}: {section} is not a section")
            node = child
        node[parts[-1]] = value
    return config


@dataclass
class ResolvedConfig:
    """A config checked and split into its typed parts."""

    model_name: str
    model: Any
    training: TrainingConfig
    options: RunOptions

    def to_dict(self) -> dict[str, Any]:
        """The plain form written to config.yaml (every default made explicit)."""
        return {
            "model": {"name": self.model_name, **config_to_dict(self.model)},
            "training": config_to_dict(self.training),
            **config_to_dict(self.options),
        }


def pop_section(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Remove section ``name`` from a plain config and return its settings ({} if absent)."""
    value = config.pop(name, None) or {}
    if not isinstance(value, Mapping):
        raise CalosimError(f"config: {name} must be a mapping of settings")
    return dict(value)


def pop_model_section(
    config: dict[str, Any], default_name: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Remove the ``model:`` section (a mapping with a name, or just the name) from a plain
    config: (model name, its other settings). ``default_name`` serves a section without one."""
    section = config.pop("model", None)
    if isinstance(section, str):
        section = {"name": section}
    if section is None and default_name is not None:
        section = {}
    values = dict(section) if isinstance(section, Mapping) else {}
    name = values.pop("name", default_name)
    if not isinstance(section, Mapping) or not isinstance(name, str):
        raise CalosimError("config: needs a model section with a name, e.g. model: {name: e2e_sae}")
    return name, values


def resolve_config(config: Mapping[str, Any]) -> ResolvedConfig:
    """Check a plain config dict; one-line CalosimError on unknown keys or bad values."""
    from calosim.models.registry import model_classes

    config = dict(config)
    name, model_values = pop_model_section(config)
    config_class, _ = model_classes(name)
    model = config_from_dict(config_class, model_values, "model")
    training = config_from_dict(TrainingConfig, pop_section(config, "training"), "training")
    options = config_from_dict(RunOptions, config, "config")
    return ResolvedConfig(name, model, training, options)


class _ConfigDumper(yaml.SafeDumper):
    """Sections as blocks, lists of numbers on one line: config.yaml stays short."""


_ConfigDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=True
    ),
)


def dump_config(config: Mapping[str, Any]) -> str:
    """YAML text of a plain config dict, keys in their given order."""
    return yaml.dump(dict(config), Dumper=_ConfigDumper, sort_keys=False)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: tuple = ()) -> list[tuple]:
    keys = set(old) | set(new)
    found: list[tuple] = []
    for key in sorted(keys, key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += _differences(a, b, (*prefix, key))
        elif a != b:
            found.append((*prefix, key))
    return found


# ------------------------------------------------------------------------------ run


def train_from_config(
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
    """Train the model a config describes into ``out_dir``; see the module docstring.

    ``data``: a dataset file path or a ZDCDataset (default: the config's ``data:``).
    ``seed``: overrides the config's; None there too draws one, recorded in config.yaml.
    ``max_minutes``: time budget of this call (default: ``training.max_minutes``).
    ``resume``: continue the run in ``out_dir`` from its last checkpoint, with the
    config it was started with (only epochs, patience and max_minutes may change).
    Under torchrun every process calls this; see calosim.training.distributed.
    """
    with session(device) as (context, device):
        return _train_run(
            config, data=data, out_dir=out_dir, seed=seed, overrides=overrides,
            max_minutes=max_minutes, resume=resume, device=device, progress=progress,
            context=context,
        )


def _train_run(
    config: str | Path | Mapping[str, Any], *, data: Any, out_dir: str | Path, seed: int | None,
    overrides: Sequence[str], max_minutes: float | None, resume: bool, device: str,
    progress: bool, context: Context,
) -> TrainResult:
    run_dir = Path(out_dir)
    raw = apply_overrides(load_config(config), overrides)
    if seed is not None:
        raw["seed"] = seed
    if isinstance(data, str | os.PathLike):
        raw["data"] = str(data)
    if resume:
        raw = _config_for_resume(run_dir, raw, seed_given=seed is not None)
    resolved = resolve_config(raw)
    if resolved.options.seed is None:
        # One seed for all processes: they must shuffle and split alike.
        resolved.options.seed = context.broadcast(fresh_seed())
    run_seed = int(resolved.options.seed)
    if not resume and (run_dir / "checkpoints" / "last.pt").exists():
        raise CalosimError(
            f"{run_dir}: already holds a training run; resume it or choose another output directory"
        )

    dataset = _load_dataset(data, resolved.options.data)
    split = _split(dataset, run_seed, resolved.options.split)
    standardiser = _standardiser(resolved.options.standardiser, dataset.particles[split["train"]])
    torch.manual_seed(run_seed)
    model = build_model(resolved.model_name, resolved.model)
    simulator = LearnedSimulator(
        model, standardiser, model_name=resolved.model_name, device=device,
        round_counts=resolved.options.round_counts, rounding=resolved.options.rounding,
    )
    fingerprint = data_fingerprint(dataset.particles)

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume and context.is_main:
        write_text_atomic(run_dir / "config.yaml", dump_config(resolved.to_dict()))
        _save_split(run_dir / "split.npz", split, fingerprint)
    conditions = np.asarray(standardiser.transform(dataset.particles), dtype=np.float32)
    validation_rows = np.sort(split["val"])[: resolved.training.validation_size]
    training_data = TrainingData(
        responses=dataset.responses,
        conditions=conditions,
        index=np.sort(split["train"]),
        validation_particles=dataset.particles[validation_rows],
        validation_responses=np.asarray(dataset.responses[validation_rows], dtype=np.float32),
    )
    trainer = Trainer(
        simulator, training_data, resolved.training, run_dir=run_dir, seed=run_seed,
        data_fingerprint=fingerprint, progress=progress, context=context,
    )
    outcome = trainer.fit(resume=resume, max_minutes=max_minutes)
    if not context.is_main:
        # Wait for rank 0's model.pt and test scores, so every process returns a result.
        context.barrier()
        return TrainResult(model_path=run_dir / "model.pt", run_dir=run_dir, metrics={})

    model_path = _copy_atomic(outcome.best_path, run_dir / "model.pt")
    metrics = _final_metrics(model_path, dataset, split, resolved, outcome, device, run_seed)
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    context.barrier()
    return TrainResult(model_path=model_path, run_dir=run_dir, metrics=metrics)


def _config_for_resume(run_dir: Path, raw: dict[str, Any], *, seed_given: bool) -> dict[str, Any]:
    """The run's own config; the new one may differ only in _RESUMABLE_CHANGES."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise CalosimError(f"{run_dir}: nothing to resume (no config.yaml)")
    saved = load_config(saved_path)
    if not seed_given and raw.get("seed") is None:
        raw = {**raw, "seed": saved.get("seed")}
    if raw.get("data") is None:
        raw = {**raw, "data": saved.get("data")}
    new = resolve_config(copy.deepcopy(raw)).to_dict()
    changed = [d for d in _differences(saved, new) if d not in _RESUMABLE_CHANGES]
    if changed:
        raise CalosimError(
            f"{run_dir}: cannot resume with a different config ({'.'.join(map(str, changed[0]))}"
            " differs); only training.epochs, patience, max_minutes and max_steps may change"
        )
    return new


def _load_dataset(data: Any, configured: str | None) -> Any:
    from calosim.data import read_dataset

    if data is not None and not isinstance(data, str | os.PathLike):
        dataset = data
        source = "the given dataset"
    else:
        path = data if data is not None else configured
        if path is None:
            raise CalosimError("no training data: give a data file or set `data:` in the config")
        dataset = read_dataset(path)
        source = str(path)
    if getattr(dataset, "responses", None) is None:
        raise CalosimError(f"{source}: holds particles only, no responses to train on")
    if len(dataset) < 10:
        raise CalosimError(f"{source}: {len(dataset)} responses are too few to train on")
    return dataset


def _split(dataset: Any, seed: int, fractions: Sequence[float]) -> dict[str, np.ndarray]:
    from calosim.data import split_indices

    split = split_indices(len(dataset), seed, tuple(fractions))
    for name in ("train", "val"):
        if len(split[name]) < 2:
            raise CalosimError(
                f"split {tuple(fractions)} of {len(dataset)} responses leaves {name} too small"
            )
    return {name: np.asarray(rows, dtype=np.int64) for name, rows in split.items()}


def _save_split(path: Path, split: Mapping[str, np.ndarray], fingerprint: str) -> None:
    """The split's row indices, with the fingerprint of the data they index."""
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **split, data_fingerprint=np.array(fingerprint))


def _standardiser(kind: str, train_particles: np.ndarray) -> Any:
    from calosim.data.transforms import ALICE_DEPLOYED, ParticleStandardiser

    if kind == "alice":
        return ALICE_DEPLOYED
    return ParticleStandardiser.fit(train_particles)


def _copy_atomic(source: Path, target: Path) -> Path:
    with atomic_output(target) as temporary:
        shutil.copyfile(source, temporary)
    return target


def _final_metrics(
    model_path: Path, dataset: Any, split: Mapping[str, np.ndarray], resolved: ResolvedConfig,
    outcome: Any, device: str, seed: int,
) -> dict[str, Any]:
    """Scores of the best model on the test split, with the run's timing and provenance."""
    best = next((r for r in reversed(outcome.history) if r["best"]), None)
    metrics: dict[str, Any] = {
        "model": resolved.model_name,
        "seed": seed,
        "stop_reason": outcome.stop_reason,
        "best_epoch": outcome.best_epoch,
        "epochs_run": max((r["epoch"] for r in outcome.history), default=0),
        "validation": None if best is None else best["val"],
        "train_seconds": outcome.seconds,
        "refine_seconds": outcome.refine_seconds,
        "max_minutes": outcome.max_minutes,
        "data": {
            "path": resolved.options.data,
            "fingerprint": data_fingerprint(dataset.particles),
            **{f"n_{name}": int(len(rows)) for name, rows in split.items()},
        },
    }
    test_rows = np.sort(split["test"])[: resolved.options.test_size]
    if len(test_rows) >= 2:
        simulator = load_simulator(model_path, device=device)
        started = time.perf_counter()
        generated = simulator.simulate(dataset.particles[test_rows], seed=seed % 2**31,
                                       allow_out_of_range=True)  # the data's own particles
        seconds = time.perf_counter() - started
        real = np.asarray(dataset.responses[test_rows], dtype=np.float32)
        metrics["test"] = {"n": int(len(test_rows)), **score_responses(real, generated)}
        metrics["generation_responses_per_second"] = len(test_rows) / max(seconds, 1e-9)
    return metrics
