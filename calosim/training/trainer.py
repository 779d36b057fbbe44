"""The one training loop every learned model uses.

Epochs over batches shuffled by a seeded generator; each model's ``training_step`` does
the optimisation. After each epoch the model generates responses for a fixed validation
subset, scored by the mean per-channel W1 and the channel MAE against the real ones; the
best model is kept as a model file, the last state as a resume checkpoint. With
``ema_decay`` the weights validated and kept are an exponential moving average of the
trained ones. A model with a refinement phase (GenerativeModel.refine) gets it after the
epochs, on its best model, and keeps the result if it validates better. The run stops
after ``epochs``, on early stopping, or when the time budget is spent. A resumed run
reloads the model, optimisers, counters and every random generator, so it continues on
the very trajectory the uninterrupted run would have followed.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from calosim.data.formats.atomic import atomic_output
from calosim.errors import CalosimError
from calosim.interrupts import raise_if_interrupted
from calosim.models.base import Batch, LearnedSimulator
from calosim.training.checkpoint import (
    load_simulator,
    load_training_state,
    save_model_file,
    save_training_state,
)
from calosim.training.distributed import SINGLE, Context
from calosim.training.hooks import NO_HOOKS, TrainingHooks

# The validation score that picks the best epoch. W1 is the default: once a model has
# learnt its conditions the MAE moves little, while W1 shows whether the distributions
# match. "w1+mae" adds the two (the MAE, larger, then weighs more).
Monitor = Literal["w1", "mae", "w1+mae"]


@dataclass
class TrainingConfig:
    """How to train: the ``training:`` section of a run config. ``lr_decay``: the learning
    rate is multiplied by it each epoch; ``ema_decay``: validate and keep an exponential
    moving average of the weights with this decay per step (None: the weights as trained);
    ``max_steps``: a budget of optimisation steps, as whole epochs (at most ``epochs``):
    unlike ``max_minutes`` it does not depend on the machine, so runs repeat exactly.
    ``max_minutes``: the time budget of the whole run, the model's refinement phase
    included, which gets the last ``refine_share`` of it (the epochs stop earlier)."""

    epochs: int = 60
    batch_size: int = 1000
    learning_rate: float = 1e-3
    lr_decay: float = 1.0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    patience: int | None = 20
    max_minutes: float | None = None
    validation_size: int = 5000
    monitor: Monitor = "w1"
    ema_decay: float | None = None
    max_steps: int | None = None
    refine_share: float = 0.25

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must not be negative, got {self.weight_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive, got {self.grad_clip}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.validation_size < 2:
            raise ValueError(f"validation_size must be at least 2, got {self.validation_size}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1), got {self.ema_decay}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        if not 0 <= self.refine_share < 1:
            raise ValueError(f"refine_share must lie in [0, 1), got {self.refine_share}")

    def epochs_for(self, batches_per_epoch: int) -> int:
        """The epochs to run with this many batches in each: ``epochs``, or fewer where
        ``max_steps`` runs out first (the epoch it runs out in is completed)."""
        if self.max_steps is None:
            return self.epochs
        return min(self.epochs, math.ceil(self.max_steps / batches_per_epoch))


@dataclass
class TrainingData:
    """Responses (photon counts) with their standardised conditions, the rows of them to
    train on (``index``, increasing; None: all), and the validation particles (raw) with
    their real responses. Rows are read per batch, so the responses may be a large
    array or an h5py dataset that is never copied whole."""

    responses: Any
    conditions: np.ndarray
    validation_particles: np.ndarray
    validation_responses: np.ndarray
    index: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.responses) != len(self.conditions):
            raise CalosimError("training responses and conditions differ in length")
        if self.index is None:
            self.index = np.arange(len(self.responses))
        if len(self.index) < 2:
            raise CalosimError("the training split needs at least 2 responses")
        if len(self.validation_particles) != len(self.validation_responses):
            raise CalosimError("validation particles and responses differ in length")
        if len(self.validation_particles) < 2:
            raise CalosimError("the validation split needs at least 2 responses")


@dataclass
class TrainingOutcome:
    """What ``Trainer.fit`` did: the files it left, the per-epoch history, why it stopped,
    the time it took (of it, the refinement phase) and the budget it was given."""

    best_path: Path
    last_path: Path
    history: list[dict[str, Any]]
    best_metric: float
    best_epoch: int
    stop_reason: str
    seconds: float
    refine_seconds: float = 0.0
    max_minutes: float | None = None


@dataclass
class _Progress:
    """Counters a resume checkpoint carries besides weights and generators."""

    epoch: int = 0
    next_batch: int = 0
    permutation: torch.Tensor | None = None
    best_metric: float = math.inf
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def score_responses(
    real: np.ndarray, generated: np.ndarray
) -> dict[str, Any]:
    """Mean per-channel W1, its per-channel values and the channel MAE, on photon counts."""
    from calosim.metrics import channel_mae, channel_wasserstein

    wasserstein = channel_wasserstein(real, generated)
    return {
        "w1": float(wasserstein.mean),
        "w1_per_channel": [float(v) for v in wasserstein.per_channel],
        "mae": float(channel_mae(real, generated)),
    }


def _monitored(metrics: Mapping[str, Any], monitor: Monitor) -> float:
    if monitor == "w1+mae":
        return float(metrics["w1"] + metrics["mae"])
    return float(metrics[monitor])


def _seed_for(seed: int, *purpose: int) -> int:
    """Independent 63-bit seeds for the generators of one run (and of each process)."""
    return int(np.random.SeedSequence(seed, spawn_key=purpose).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


class Trainer:
    """Trains ``simulator.model`` on ``data`` into ``run_dir``.

    Files: checkpoints/last.pt (resume state, each epoch), checkpoints/best.pt (model
    file of the best validation score), metrics.jsonl (one JSON object per epoch) and
    train.log (the same, readable).

    Under torchrun (``context``, see calosim.training.distributed) each process trains
    on its share of every batch with gradients averaged over all, so a step sees the
    same batch as a single-process run; rank 0 validates, decides and writes the files.

    ``hooks`` (calosim.training.hooks) let a plug-in such as a continual strategy extend
    the batches, add terms to the model's loss and act after each optimiser step.
    """

    def __init__(
        self,
        simulator: LearnedSimulator,
        data: TrainingData,
        config: TrainingConfig,
        *,
        run_dir: str | Path,
        seed: int,
        data_fingerprint: str | None = None,
        progress: bool = True,
        clock: Callable[[], float] = time.monotonic,
        context: Context = SINGLE,
        hooks: TrainingHooks = NO_HOOKS,
    ) -> None:
        self.context = context
        self.hooks = hooks
        self.simulator = simulator
        self.model = simulator.model
        self.device = simulator.device
        self.data = data
        self.config = config
        self.run_dir = Path(run_dir)
        self.seed = int(seed)
        self.data_fingerprint = data_fingerprint
        self.progress = progress and context.is_main
        self.clock = clock
        self.optimisers = self.model.configure_optimisers(config.learning_rate, config.weight_decay)
        self.base_learning_rates = [
            [group["lr"] for group in optimiser.param_groups] for optimiser in self.optimisers
        ]
        self.shuffle_generator = torch.Generator().manual_seed(_seed_for(self.seed, 1))
        # Rank 0 keeps the single-process seed; the other ranks draw their own noise.
        noise_key = (2,) if context.is_main else (2, context.rank)
        self.noise_generator = torch.Generator().manual_seed(_seed_for(self.seed, *noise_key))
        context.average_gradients(self.model)
        # an exponential moving average of the weights, which are then the ones validated
        # and kept: diffusion models sample far better from it than from the last step
        self.average = None if config.ema_decay is None else AveragedModel(
            self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
        )
        self.validation_seed = _seed_for(self.seed, 3) % 2**31
        n_val = min(config.validation_size, len(data.validation_particles))
        self.validation_particles = data.validation_particles[:n_val]
        self.validation_responses = np.asarray(data.validation_responses[:n_val])

    @property
    def best_path(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def refined_path(self) -> Path:
        return self.run_dir / "checkpoints" / "refined.pt"

    # ------------------------------------------------------------------ main loop

    def fit(self, *, resume: bool = False, max_minutes: float | None = None) -> TrainingOutcome:
        """Train until the epochs are done, patience runs out or the time budget is spent."""
        max_minutes = max_minutes if max_minutes is not None else self.config.max_minutes
        progress = self._resume() if resume else _Progress()
        self.context.broadcast_state(self.model)
        started = self.clock()
        run_deadline = None if max_minutes is None else started + 60.0 * max_minutes
        share = self.config.refine_share if self.model.refines else 0.0
        deadline = None if max_minutes is None else started + 60.0 * max_minutes * (1 - share)
        n = len(self.data.index)
        n_batches = n // self.config.batch_size if n >= self.config.batch_size else 1
        if min(n, self.config.batch_size) // self.context.world_size < 2:
            raise CalosimError(
                f"batches of {min(n, self.config.batch_size)} responses split over "
                f"{self.context.world_size} processes leave fewer than 2 per process"
            )
        stop_reason = "epochs"
        epochs = self.config.epochs_for(n_batches)
        while progress.epoch < epochs:
            if self._patience_spent(progress):
                stop_reason = "early stopping"
                break
            self._set_learning_rate(progress.epoch)
            if progress.permutation is None:
                progress.permutation = torch.randperm(n, generator=self.shuffle_generator)
            epoch_started = self.clock()
            losses, timed_out = self._run_batches(progress, n_batches, deadline)
            record = self._validate(progress, losses, self.clock() - epoch_started, timed_out)
            if timed_out:
                stop_reason = "time budget"
                self._save_state(progress)
                break
            progress.epoch += 1
            progress.next_batch = 0
            progress.permutation = None
            self._save_state(progress)
            self._log(record)
        if stop_reason == "time budget":
            self._log(progress.history[-1])
        keep = self.best_path
        refine_started = self.clock()
        if self.model.refines and progress.best_epoch > 0:
            keep = self._refine(progress, run_deadline)
        return TrainingOutcome(
            best_path=keep, last_path=self.last_path, history=progress.history,
            best_metric=progress.best_metric, best_epoch=progress.best_epoch,
            stop_reason=stop_reason, seconds=self.clock() - started,
            refine_seconds=self.clock() - refine_started, max_minutes=max_minutes,
        )

    def _patience_spent(self, progress: _Progress) -> bool:
        patience = self.config.patience
        return patience is not None and progress.epochs_without_improvement >= patience

    def _set_learning_rate(self, epoch: int) -> None:
        factor = self.config.lr_decay**epoch
        for optimiser, rates in zip(self.optimisers, self.base_learning_rates, strict=True):
            for group, rate in zip(optimiser.param_groups, rates, strict=True):
                group["lr"] = rate * factor

    def _run_batches(
        self, progress: _Progress, n_batches: int, deadline: float | None
    ) -> tuple[dict[str, float], bool]:
        """Batches from progress.next_batch to the end of the epoch; returns mean losses
        and whether the time budget ran out first."""
        self.model.train()
        sums: dict[str, float] = {}
        done = 0
        bar = tqdm(
            total=n_batches, initial=progress.next_batch, disable=not self.progress,
            desc=f"epoch {progress.epoch + 1}/{self.config.epochs_for(n_batches)}", leave=False,
        )
        timed_out = False
        with bar:
            while progress.next_batch < n_batches:
                raise_if_interrupted()
                if deadline is not None and self.context.any(self.clock() >= deadline):
                    timed_out = True
                    break
                batch = self._batch(progress.permutation, progress.next_batch)
                step_losses = self.context.mean_losses(self.model.training_step(
                    batch, self.optimisers, self.config.grad_clip, penalty=self.hooks.penalty
                ))
                self.hooks.after_step(self.model)
                self.context.broadcast_state(self.model, parameters=False)
                if self.average is not None:
                    self.average.update_parameters(self.model)
                if not math.isfinite(step_losses["loss"]):
                    raise CalosimError(
                        f"training diverged at epoch {progress.epoch + 1} (loss "
                        f"{step_losses['loss']}); lower training.learning_rate or set grad_clip"
                    )
                for name, value in step_losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                done += 1
                progress.next_batch += 1
                bar.update(1)
                if done % 10 == 0 or progress.next_batch == n_batches:
                    bar.set_postfix({k: f"{v / done:.4g}" for k, v in sums.items()}, refresh=False)
        return {name: value / max(done, 1) for name, value in sums.items()}, timed_out

    def model_images(self, responses: np.ndarray) -> np.ndarray:
        """Stored responses as the model learns them: log(1 + photon counts)."""
        from calosim.data.transforms import log_counts

        return log_counts(responses)

    def _batch(self, permutation: torch.Tensor, index: int) -> Batch:
        size = self.config.batch_size
        rows = np.sort(self.data.index[permutation[index * size : (index + 1) * size].numpy()])
        return self.hooks.extend_batch(self._rows_batch(self.context.shard(rows),
                                                        self.noise_generator))

    def _rows_batch(self, rows: np.ndarray, generator: torch.Generator) -> Batch:
        images = torch.from_numpy(np.asarray(self.model_images(self.data.responses[rows]),
                                             np.float32))
        conditions = torch.from_numpy(np.asarray(self.data.conditions[rows], np.float32))
        return Batch(images.to(self.device), conditions.to(self.device), generator)

    def _training_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        size = self.config.batch_size
        for start in range(0, len(self.data.index), size):
            yield self.hooks.extend_batch(
                self._rows_batch(self.data.index[start : start + size], generator))

    # ----------------------------------------------------------------- refinement

    def _refine(self, progress: _Progress, deadline: float | None) -> Path:
        """The model's refinement phase (GenerativeModel.refine) on the best model of the
        epochs, scored like an epoch. Returns the model file to keep: refined.pt when it
        scores better, else best.pt. It always starts from best.pt with its own seed, so a
        resumed run that refines again gets the same result (unless ``deadline`` cut it
        short). Under torchrun every process refines alike (their gradients are averaged)
        and stops at the same step; rank 0 scores and writes."""
        self.load_weights(self.best_path)
        started = self.clock()
        generator = torch.Generator().manual_seed(_seed_for(self.seed, 4))
        def time_is_up() -> bool:
            raise_if_interrupted()
            return deadline is not None and bool(self.context.any(self.clock() >= deadline))

        losses = self.model.refine(self._training_batches(generator), generator, self.progress,
                                   time_is_up=time_is_up)
        if not self.context.is_main:
            return self.best_path
        train_seconds = self.clock() - started
        started = self.clock()
        scores = self.evaluate()
        metric = self.monitored(scores)
        improved = metric < progress.best_metric
        self.save_model(self.refined_path, {"epoch": progress.best_epoch, "refined": True,
                                            "validation": dict(scores)})
        record = {
            "epoch": progress.best_epoch, "phase": "refine", "partial": False,
            "train": losses or {}, "val": scores, "monitor": metric, "best": improved,
            "learning_rate": None, "train_seconds": train_seconds,
            "val_seconds": self.clock() - started,
        }
        progress.history.append(record)
        self._write_history(progress.history)
        self._log(record)
        if not improved:
            return self.best_path
        progress.best_metric = metric
        return self.refined_path

    # ----------------------------------------------------------------- validation

    def evaluate(self) -> dict[str, Any]:
        """Scores of the current model on the fixed validation subset."""
        # the training data's own particles: scored whatever ranges they span
        generated = self.simulator.simulate(self.validation_particles, seed=self.validation_seed,
                                            allow_out_of_range=True)
        return score_responses(self.validation_responses, generated)

    def _validate(
        self, progress: _Progress, losses: dict[str, float], train_seconds: float, partial: bool
    ) -> dict[str, Any] | None:
        """Rank 0 scores the epoch and keeps the best model; every rank then holds its
        counters, so all make the same early-stopping decision."""
        record = None
        if self.context.is_main:
            record = self._score_epoch(progress, losses, train_seconds, partial)
        (progress.best_metric, progress.best_epoch, progress.epochs_without_improvement,
         progress.history) = self.context.broadcast((
            progress.best_metric, progress.best_epoch, progress.epochs_without_improvement,
            progress.history,
        ))
        return record

    def _score_epoch(
        self, progress: _Progress, losses: dict[str, float], train_seconds: float, partial: bool
    ) -> dict[str, Any]:
        started = self.clock()
        with self._averaged_weights():
            scores = self.evaluate()
            metric = self.monitored(scores)
            improved = metric < progress.best_metric
            if improved:
                progress.best_metric = metric
                progress.best_epoch = progress.epoch + 1
                progress.epochs_without_improvement = 0
                self.save_best(progress.epoch + 1, scores)
        if not improved and not partial:
            progress.epochs_without_improvement += 1
        record = {
            "epoch": progress.epoch + 1,
            "partial": partial,
            "train": losses,
            "val": scores,
            "monitor": metric,
            "best": improved,
            "learning_rate": self.optimisers[0].param_groups[0]["lr"],
            "train_seconds": train_seconds,
            "val_seconds": self.clock() - started,
        }
        progress.history.append(record)
        return record

    @contextlib.contextmanager
    def _averaged_weights(self) -> Iterator[None]:
        """The moving-average weights in the model for the duration (training.ema_decay);
        the training weights are put back afterwards."""
        if self.average is None:
            yield
            return
        training = {name: value.clone() for name, value in self.model.state_dict().items()}
        self.model.load_state_dict(self.average.module.state_dict())
        try:
            yield
        finally:
            self.model.load_state_dict(training)

    def monitored(self, scores: Mapping[str, Any]) -> float:
        """The validation number that picks the best epoch (lower is better)."""
        return _monitored(scores, self.config.monitor)

    def describe_scores(self, scores: Mapping[str, Any]) -> str:
        """The validation scores as the log line shows them."""
        return f"val W1 {scores['w1']:.4g}  MAE {scores['mae']:.4g}"

    # ---------------------------------------------------------------- persistence

    def save_best(self, epoch: int, scores: Mapping[str, Any]) -> None:
        """Write the model of a new best epoch to ``best_path`` as a model file."""
        self.save_model(self.best_path, {"epoch": epoch, "validation": dict(scores)})

    def save_model(self, path: Path, extra: Mapping[str, Any]) -> None:
        """Write the model as it is now to ``path`` as a model file, with ``extra``."""
        save_model_file(path, self.simulator, data_fingerprint=self.data_fingerprint,
                        seed=self.seed, extra=extra)

    def load_weights(self, path: Path) -> None:
        """Put the weights of the model file ``path`` (one this trainer wrote) in the model."""
        self.model.load_state_dict(load_simulator(path, str(self.device)).model.state_dict())

    def _save_state(self, progress: _Progress) -> None:
        # The generators of the other ranks go into rank 0's checkpoint, so a resumed
        # multi-process run draws the same noise the uninterrupted one would have.
        rank_rngs = self.context.gather(
            {"noise": self.noise_generator.get_state(), "torch": torch.get_rng_state()}
        )
        if not self.context.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "average": None if self.average is None else self.average.state_dict(),
            "optimisers": [optimiser.state_dict() for optimiser in self.optimisers],
            "epoch": progress.epoch,
            "next_batch": progress.next_batch,
            "permutation": progress.permutation,
            "best_metric": progress.best_metric,
            "best_epoch": progress.best_epoch,
            "epochs_without_improvement": progress.epochs_without_improvement,
            "history": progress.history,
            "rng": {
                "shuffle": self.shuffle_generator.get_state(),
                "noise": self.noise_generator.get_state(),
                "torch": torch.get_rng_state(),
                "ranks": rank_rngs[1:],
            },
            "world_size": self.context.world_size,
            "seed": self.seed,
            "data_fingerprint": self.data_fingerprint,
        }
        save_training_state(self.last_path, state)
        self._write_history(progress.history)

    def _resume(self) -> _Progress:
        if not self.last_path.is_file():
            raise CalosimError(f"{self.run_dir}: nothing to resume (no {self.last_path.name})")
        state = load_training_state(self.last_path, str(self.device))
        if state.get("seed") != self.seed:
            raise CalosimError(
                f"{self.last_path}: checkpoint of seed {state.get('seed')}, not {self.seed}"
            )
        if state.get("data_fingerprint") != self.data_fingerprint:
            raise CalosimError(
                f"{self.last_path}: the run was trained on other data; resume it with its own"
            )
        world = int(state.get("world_size", 1))
        if world != self.context.world_size:
            raise CalosimError(
                f"{self.last_path}: written by {world} training process(es); resume it with "
                f"the same number (now {self.context.world_size})"
            )
        self.model.load_state_dict(state["model"])
        if self.average is not None:
            if state.get("average") is None:
                raise CalosimError(f"{self.last_path}: written without training.ema_decay")
            self.average.load_state_dict(state["average"])
        for optimiser, saved in zip(self.optimisers, state["optimisers"], strict=True):
            optimiser.load_state_dict(saved)
        self.shuffle_generator.set_state(state["rng"]["shuffle"].cpu())
        rng = state["rng"] if self.context.is_main else state["rng"]["ranks"][self.context.rank - 1]
        self.noise_generator.set_state(rng["noise"].cpu())
        torch.set_rng_state(rng["torch"].cpu())
        permutation = state["permutation"]
        return _Progress(
            epoch=int(state["epoch"]),
            next_batch=int(state["next_batch"]),
            permutation=None if permutation is None else permutation.cpu(),
            best_metric=float(state["best_metric"]),
            best_epoch=int(state["best_epoch"]),
            epochs_without_improvement=int(state["epochs_without_improvement"]),
            history=list(state["history"]),
        )

    def _write_history(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the checkpointed history, so a resumed run's log
        holds each epoch exactly once."""
        path = self.run_dir / "metrics.jsonl"
        text = "".join(json.dumps(record) + "\n" for record in history)
        write_text_atomic(path, text)

    def _log(self, record: Mapping[str, Any] | None) -> None:
        if record is None or not self.context.is_main:
            return
        label = (
            f"refinement of epoch {record['epoch']}" if record.get("phase") == "refine"
            else f"epoch {record['epoch']}{' (partial)' if record['partial'] else ''}"
        )
        line = (
            f"{label}: "
            f"loss {record['train'].get('loss', float('nan')):.5g}  "
            f"{self.describe_scores(record['val'])}"
            f"{'  *best*' if record['best'] else ''}  "
            f"({record['train_seconds']:.1f} s + {record['val_seconds']:.1f} s)"
        )
        with open(self.run_dir / "train.log", "a", encoding="utf-8") as stream:
            stream.write(line + "\n")
        if self.progress:
            tqdm.write(line)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
