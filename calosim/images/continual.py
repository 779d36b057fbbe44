"""Continual learning on an image benchmark: `calosim train` for configs with both a
``continual:`` and a ``data:`` section (configs/images/continual_*.yaml).

    continual: {strategy: multiband, scenario: class-incremental, n_tasks: 5,
                alpha: 1.0, condition_memory: 2000, options: {...}}
    model: {name: multiband_vae, ...}    # the strategy's model; shape and conditions
    training: {epochs: 5, ...}           #   come from the data, as in calosim.images.train
    data: {benchmark: fashion-mnist}     # ImageDataConfig (conditional must stay true)
    evaluation: {samples: 1000}          # test images per task scored after each task

The tasks cut the training images (calosim.data.image_tasks: class-incremental pairs of
classes, or Dirichlet class mixes fixed by the seed); each task's test part is the same
cut of the test images. The strategies of calosim.continual learn the tasks in turn from
one-hot labels; after task i the model generates images for the labels of every task j's
test part, and R[i, j] is their FID against those test images. The run directory
receives config.yaml, r_matrix.json (with the untrained model's baseline row),
model.pt (the final image model) and metrics.json (final average FID, transfer metrics).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from calosim.continual.run import ContinualSection
from calosim.continual.strategies import strategy_class
from calosim.continual.strategies.base import StrategyContext, TaskData
from calosim.data.image_tasks import class_incremental_tasks, dirichlet_tasks
from calosim.data.images import ImageDataset, load_image_benchmark
from calosim.errors import CalosimError
from calosim.images.generator import ImageGenerator, save_image_model
from calosim.images.train import (
    ImageDataConfig,
    ImageEvaluationConfig,
    ImageTrainer,
    resolve_image_config,
)
from calosim.metrics.continual import read_r_matrix, transfer_metrics, write_r_matrix
from calosim.metrics.images import feature_scores
from calosim.models.base import GenerativeModel, config_from_dict, config_to_dict
from calosim.models.registry import build_model
from calosim.training.hooks import TrainingHooks
from calosim.training.run import TrainResult, apply_overrides, dump_config, load_config
from calosim.training.trainer import TrainingConfig, TrainingData, write_text_atomic


@dataclass
class ImageContinualSection(ContinualSection):
    """The ``continual:`` section of an image config: the ZN one's keys, with tasks cut by
    ``scenario`` (and ``alpha`` for Dirichlet) instead of by energy."""

    scenario: Literal["class-incremental", "dirichlet"] = "class-incremental"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha > 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")


def _task_rows(labels: np.ndarray, section: ImageContinualSection, seed: int) -> list[np.ndarray]:
    if section.scenario == "class-incremental":
        return class_incremental_tasks(labels, section.n_tasks)
    return dirichlet_tasks(labels, section.n_tasks, section.alpha, seed)


def _fid_row(generator: ImageGenerator, classifier: Any, tests: Sequence[ImageDataset],
             test_features: Sequence[np.ndarray], seed: int) -> list[float]:
    """FID of generated images against each task's test images (NaN under 2 images)."""
    from calosim.metrics.classifier import extract_features

    row = []
    for test, features in zip(tests, test_features, strict=True):
        if len(test) < 2:
            row.append(float("nan"))
            continue
        generated = extract_features(classifier, generator.generate(test.labels, seed))
        row.append(feature_scores(features, generated).fid)
    return row


def _task_data(index: int, name: str, part: ImageDataset, generator: ImageGenerator,
               validation_fraction: float, seed: int) -> TaskData:
    """A task's images as the strategies read them; for the Trainer, a validation part of
    the task's own images (the labels stand where ZN particles do)."""
    parts = part.split(validation_fraction, seed + index)
    training = TrainingData(responses=parts.train.images,
                            conditions=generator.conditions(parts.train.labels),
                            validation_particles=parts.test.labels,
                            validation_responses=parts.test.images)
    return TaskData(index, name, torch.from_numpy(parts.train.images),
                    torch.from_numpy(generator.conditions(parts.train.labels)), (0.0, 0.0),
                    training)


def train_image_continual(
    config: str | Path | Mapping[str, Any], *, data: Any = None, out_dir: str | Path,
    seed: int | None = None, overrides: Sequence[str] = (), max_minutes: float | None = None,
    resume: bool = False, device: str = "cpu", progress: bool = True,
) -> TrainResult:
    """Run an image continual config into ``out_dir``; see the module docstring. The
    arguments are those of calosim.training.run.train_from_config (no data, resume or
    time budget: the budget is ``training.epochs`` per task)."""
    from calosim.metrics.classifier import extract_features, load_or_train_classifier

    if data is not None or resume or max_minutes is not None:
        raise CalosimError("image continual runs take no --data, --resume or --max-minutes")
    run_dir = Path(out_dir)
    if (run_dir / "r_matrix.json").exists():
        raise CalosimError(f"{run_dir}: already holds a continual run; choose another directory")
    raw = apply_overrides(load_config(config), overrides)
    if seed is not None:
        raw["seed"] = seed
    section = config_from_dict(ImageContinualSection, raw.pop("continual", None), "continual")
    training = config_from_dict(TrainingConfig, raw.pop("training", None), "training")
    plain_data = config_from_dict(ImageDataConfig, raw.get("data"), "data")
    if not plain_data.conditional:
        raise CalosimError("config: continual image runs replay labels; set data.conditional")
    splits = load_image_benchmark(plain_data.benchmark, data_dir=plain_data.data_dir,
                                  digits_size=plain_data.digits_size, seed=plain_data.split_seed)
    run = resolve_image_config(raw, splits.train.image_shape, splits.train.n_classes)
    strategy_cls = strategy_class(section.strategy)
    if strategy_cls.model_name is not None and run.model_name != strategy_cls.model_name:
        raise CalosimError(f"config: strategy {section.strategy} trains model "
                           f"{strategy_cls.model_name!r}, not {run.model_name!r}")
    options = config_from_dict(strategy_cls.options_class, section.options, "continual.options")
    evaluation: ImageEvaluationConfig = run.evaluation

    trains = [splits.train.subset(r) for r in _task_rows(splits.train.labels, section, run.seed)]
    tests = [splits.test.subset(r).sample(evaluation.samples, run.seed)
             for r in _task_rows(splits.test.labels, section, run.seed)]
    names = [f"task {i + 1}" for i in range(section.n_tasks)]
    classifier, _ = load_or_train_classifier(splits.train)
    test_features = [extract_features(classifier, t.images) if len(t) >= 2 else np.empty(0)
                     for t in tests]

    torch.manual_seed(run.seed)
    torch_device = torch.device(device)

    def generator_of(model: GenerativeModel) -> ImageGenerator:
        return ImageGenerator(model, run.model_name, plain_data.benchmark,
                              splits.train.n_classes, True, device=torch_device)

    def make_trainer(model: GenerativeModel, data: TrainingData, config: TrainingConfig,
                     task_dir: Path, task_seed: int, hooks: TrainingHooks) -> ImageTrainer:
        return ImageTrainer(generator_of(model), data, config, classifier=classifier,
                            k=evaluation.k, run_dir=task_dir, seed=task_seed,
                            progress=progress, hooks=hooks)

    context = StrategyContext(standardiser=None, training=training, device=torch_device,
                              seed=run.seed, condition_memory=section.condition_memory,
                              progress=progress, model_name=run.model_name, run_dir=run_dir,
                              trainer_factory=make_trainer,
                              replay_images=lambda model, noise, conditions, _: model.generate(
                                  noise, conditions))
    strategy = strategy_cls(build_model(run.model_name, run.model), options, context)
    generator = generator_of(strategy.model)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"continual": config_to_dict(section), **run.to_dict(),
                "training": config_to_dict(training)}
    write_text_atomic(run_dir / "config.yaml", dump_config(resolved))
    started = time.perf_counter()
    baseline = _fid_row(generator, classifier, tests, test_features, run.seed)
    matrix = np.full((section.n_tasks, section.n_tasks), np.nan)
    for index, part in enumerate(trains):
        strategy.begin_task(index)
        task = _task_data(index, names[index], part, generator, run.data.validation_fraction,
                          run.seed)
        strategy.learn_task(task)
        strategy.end_task(task)
        matrix[index] = _fid_row(generator, classifier, tests, test_features, run.seed)
    write_r_matrix(run_dir, matrix, "fid", names, baseline=baseline)
    save_image_model(run_dir / "model.pt", generator, seed=run.seed)
    metrics = {
        "strategy": section.strategy, "scenario": section.scenario,
        "benchmark": plain_data.benchmark, "seed": run.seed, "seconds": time.perf_counter()
        - started, "task_sizes": [len(t) for t in trains],
        "task_classes": [np.unique(t.labels).tolist() for t in trains],
        **transfer_metrics(read_r_matrix(run_dir)),
    }
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return TrainResult(model_path=run_dir / "model.pt", run_dir=run_dir, metrics=metrics)
