"""`calosim train` for the image benchmarks: a config with a ``data: {benchmark: ...}`` section.

The config has the ``model:`` and ``training:`` sections of a ZN config, plus ``data:``
(ImageDataConfig), ``evaluation:`` (ImageEvaluationConfig) and ``seed:``. The model's
``image_shape`` and ``condition_dim`` come from the data (10 one-hot classes, or 0 for
an unconditional model); images go in as they are, in [0, 1] (see calosim.images).

Training runs the one Trainer of calosim.training; each epoch's validation score is the
FID (with precision and recall) of generated images against held-out training images in
the features of the benchmark's cached LeNet classifier, and the lowest FID picks the
model. The run directory receives config.yaml, train.log, metrics.jsonl,
checkpoints/{last,best}.pt, model.pt (an image model file) and metrics.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from calosim.data.images import DEFAULT_DIGITS_SIZE, ImageDataset, load_image_benchmark
from calosim.errors import CalosimError
from calosim.images.generator import ImageGenerator, load_image_generator, save_image_model
from calosim.metrics.images import DEFAULT_NEIGHBOURS, feature_scores
from calosim.models.base import config_from_dict, config_to_dict
from calosim.models.registry import build_model, model_classes
from calosim.simulators.base import fresh_seed
from calosim.training.hooks import NO_HOOKS, TrainingHooks
from calosim.training.run import (
    TrainResult,
    _copy_atomic,
    apply_overrides,
    dump_config,
    load_config,
    pop_model_section,
    pop_section,
)
from calosim.training.trainer import Trainer, TrainingConfig, TrainingData, write_text_atomic

Benchmark = Literal["fashion-mnist", "mnist", "digits"]


@dataclass
class ImageDataConfig:
    """The ``data:`` section: which benchmark, and how it is cut and conditioned."""

    benchmark: Benchmark = "digits"
    data_dir: str | None = None
    digits_size: int = DEFAULT_DIGITS_SIZE
    conditional: bool = True
    validation_fraction: float = 0.1
    split_seed: int = 0  # the digits' train/test split, as `calosim images-floor --seed`

    def __post_init__(self) -> None:
        if not 0 < self.validation_fraction < 0.5:
            raise ValueError(f"validation_fraction must lie in (0, 0.5), got "
                             f"{self.validation_fraction}")
        if self.digits_size < 8:
            raise ValueError(f"digits_size must be at least 8, got {self.digits_size}")


@dataclass
class ImageEvaluationConfig:
    """The ``evaluation:`` section: images generated per benchmark score, and k of the
    precision/recall manifolds."""

    samples: int = 10_000
    k: int = DEFAULT_NEIGHBOURS

    def __post_init__(self) -> None:
        if self.samples < 4:
            raise ValueError(f"samples must be at least 4, got {self.samples}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")


@dataclass
class ImageRunConfig:
    """A checked image config, split into its typed parts."""

    model_name: str
    model: Any
    training: TrainingConfig
    data: ImageDataConfig
    evaluation: ImageEvaluationConfig
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"name": self.model_name, **config_to_dict(self.model)},
            "training": config_to_dict(self.training),
            "data": config_to_dict(self.data),
            "evaluation": config_to_dict(self.evaluation),
            "seed": self.seed,
        }


def resolve_image_config(raw: Mapping[str, Any], image_shape: tuple[int, int] | None = None,
                         n_classes: int = 10) -> ImageRunConfig:
    """Check a plain image config; one-line CalosimError on unknown keys or bad values.

    ``image_shape`` (default: the benchmark's) and the data's ``conditional`` fill the
    model's ``image_shape`` and ``condition_dim``, which a config may state only if equal.
    """
    config = dict(raw)
    name, model_values = pop_model_section(config)
    data = config_from_dict(ImageDataConfig, pop_section(config, "data"), "data")
    evaluation = config_from_dict(ImageEvaluationConfig, pop_section(config, "evaluation"),
                                  "evaluation")
    training = config_from_dict(TrainingConfig, pop_section(config, "training"), "training")
    seed = config.pop("seed", None)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise CalosimError(f"config: seed must be a non-negative integer, got {seed!r}")
    if config:
        raise CalosimError(f"config: unknown key {sorted(config)[0]} in an image config (known: "
                           "model, training, data, evaluation, seed)")
    derived = {"condition_dim": n_classes if data.conditional else 0}
    if image_shape is not None:
        derived["image_shape"] = list(image_shape)
    for key, value in derived.items():
        given = model_values.get(key)
        if given is not None and list(np.atleast_1d(given)) != list(np.atleast_1d(value)):
            raise CalosimError(f"config: model.{key} is {given!r} but the data give {value!r}; "
                               "leave it out")
        model_values[key] = value
    config_class, _ = model_classes(name)
    model = config_from_dict(config_class, model_values, "model")
    return ImageRunConfig(name, model, training, data, evaluation,
                          fresh_seed() if seed is None else seed)


class ImageTrainer(Trainer):
    """The Trainer on images in [0, 1], validated by FID, precision and recall.

    ``data.validation_particles`` holds the validation labels; the real validation
    images' classifier features are computed once.
    """

    def __init__(self, generator: ImageGenerator, data: TrainingData, config: TrainingConfig,
                 *, classifier: Any, k: int, run_dir: Path, seed: int, progress: bool,
                 hooks: TrainingHooks = NO_HOOKS) -> None:
        from calosim.metrics.classifier import extract_features

        super().__init__(generator, data, config, run_dir=run_dir, seed=seed,  # type: ignore[arg-type]
                         progress=progress, hooks=hooks)
        self.generator = generator
        self.classifier = classifier
        self.k = k
        self.validation_features = extract_features(classifier, self.validation_responses,
                                                    "validation images")

    def model_images(self, responses: np.ndarray) -> np.ndarray:
        # pixels in [0, 1] are learnt as they are: no count transform
        return responses

    def evaluate(self) -> dict[str, Any]:
        from calosim.metrics.classifier import extract_features

        generated = self.generator.generate(self.validation_particles, self.validation_seed)
        features = extract_features(self.classifier, generated, "generated images")
        scores = feature_scores(self.validation_features, features, self.k)
        return {"fid": scores.fid, "precision": scores.precision, "recall": scores.recall}

    def monitored(self, scores: Mapping[str, Any]) -> float:
        return float(scores["fid"])

    def describe_scores(self, scores: Mapping[str, Any]) -> str:
        return (f"val FID {scores['fid']:.4g}  precision {scores['precision']:.3f}  "
                f"recall {scores['recall']:.3f}")

    def save_model(self, path: Path, extra: Mapping[str, Any]) -> None:
        save_image_model(path, self.generator, seed=self.seed, extra=extra)

    def load_weights(self, path: Path) -> None:
        self.model.load_state_dict(load_image_generator(path, str(self.device)).model.state_dict())


def train_images_from_config(
    config: str | Path | Mapping[str, Any], *, data: Any = None, out_dir: str | Path,
    seed: int | None = None, overrides: Sequence[str] = (), max_minutes: float | None = None,
    resume: bool = False, device: str = "cpu", progress: bool = True,
) -> TrainResult:
    """Train the image model a config describes into ``out_dir``; see the module docstring.
    The arguments are those of calosim.training.run.train_from_config."""
    from calosim.metrics.classifier import load_or_train_classifier

    if data is not None:
        raise CalosimError("an image config reads its benchmark from data: (no --data)")
    if resume:
        raise CalosimError("image runs cannot be resumed yet; start a new output directory")
    run_dir = Path(out_dir)
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise CalosimError(f"{run_dir}: already holds a training run; choose another output "
                           "directory")
    raw = apply_overrides(load_config(config), overrides)
    if seed is not None:
        raw["seed"] = seed
    plain_data = config_from_dict(ImageDataConfig, pop_section(dict(raw), "data"), "data")
    splits = load_image_benchmark(plain_data.benchmark, data_dir=plain_data.data_dir,
                                  digits_size=plain_data.digits_size, seed=plain_data.split_seed)
    run = resolve_image_config(raw, splits.train.image_shape, splits.train.n_classes)
    parts = splits.train.split(run.data.validation_fraction, run.seed)
    classifier, _ = load_or_train_classifier(splits.train)

    torch.manual_seed(run.seed)
    generator = ImageGenerator(build_model(run.model_name, run.model), run.model_name,
                               run.data.benchmark, splits.train.n_classes, run.data.conditional,
                               device=torch.device(device))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", dump_config(run.to_dict()))
    trainer = ImageTrainer(
        generator, _training_data(generator, parts.train, parts.test), run.training,
        classifier=classifier, k=run.evaluation.k, run_dir=run_dir, seed=run.seed,
        progress=progress,
    )
    outcome = trainer.fit(max_minutes=max_minutes)
    model_path = _copy_atomic(outcome.best_path, run_dir / "model.pt")
    best = next((r for r in reversed(outcome.history) if r["best"]), None)
    metrics = {
        "model": run.model_name,
        "benchmark": run.data.benchmark,
        "conditional": run.data.conditional,
        "seed": run.seed,
        "stop_reason": outcome.stop_reason,
        "best_epoch": outcome.best_epoch,
        "epochs_run": max((r["epoch"] for r in outcome.history), default=0),
        "validation": None if best is None else best["val"],
        "train_seconds": outcome.seconds,
        "n_train": len(parts.train),
        "n_val": len(parts.test),
    }
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return TrainResult(model_path=model_path, run_dir=run_dir, metrics=metrics)


def _training_data(generator: ImageGenerator, train: ImageDataset,
                   validation: ImageDataset) -> TrainingData:
    """Images and conditions to train on; the validation labels stand where the ZN
    validation particles do."""
    return TrainingData(responses=train.images, conditions=generator.conditions(train.labels),
                        validation_particles=validation.labels,
                        validation_responses=validation.images)
