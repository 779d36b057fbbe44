"""Strategies that are plug-ins of the one training loop, around any registered model.

Each task is a run of calosim.training.Trainer on that task's data (its epochs,
validation, moving average, early stopping, the model's own ``training_step`` and its
refinement phase, in ``run_dir/tasks/task_K``); the strategy joins through the Trainer's
hooks (calosim.training.hooks): replay rows in every batch, penalty terms in the loss,
bookkeeping after each step, and its own ``prepare`` / ``consolidate`` around the run.
The best model of the task's run is the one carried to the next task.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from calosim.continual.strategies.base import (
    FrozenReplaySource,
    ReplayImages,
    Strategy,
    TaskData,
    task_seed,
)
from calosim.continual.strategies.vae import ReplayOptions
from calosim.errors import CalosimError
from calosim.models.base import Batch, GenerativeModel, LearnedSimulator
from calosim.training.hooks import TrainingHooks
from calosim.training.trainer import Trainer, TrainingConfig, TrainingData


class PluginStrategy(Strategy, TrainingHooks):
    """Trains the model on each task with the Trainer; fine-tuning when nothing is added
    (the naive strategy). Subclasses override the hooks they need."""

    model_name = None

    def learn_task(self, task: TaskData) -> dict[str, float]:
        if task.training is None:
            raise CalosimError(f"{self.name}: task {task.index + 1} has no validation part "
                               "for the Trainer")
        with self.task_directory(task) as run_dir:
            self.prepare(task)
            factory = self.context.trainer_factory or self.zn_trainer
            trainer = factory(self.model, self.training_data(task), self.training_config(task),
                              run_dir, task_seed(self.context.seed, task.index, 2), self)
            outcome = trainer.fit()
            trainer.load_weights(outcome.best_path)
        self.consolidate(task)
        kept = next((r for r in reversed(outcome.history) if r["best"]), outcome.history[-1])
        return {**kept["train"], "epochs": float(len(outcome.history)),
                "best_epoch": float(outcome.best_epoch)}

    @contextmanager
    def task_directory(self, task: TaskData) -> Iterator[Path]:
        """``run_dir/tasks/task_K``, emptied first (a task interrupted before its end starts
        over), or a temporary directory for a strategy used outside a run."""
        if self.context.run_dir is None:
            with tempfile.TemporaryDirectory(prefix="calosim-task-") as temporary:
                yield Path(temporary)
            return
        run_dir = self.context.run_dir / "tasks" / f"task_{task.index + 1}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        yield run_dir

    def zn_trainer(self, model: GenerativeModel, data: TrainingData, config: TrainingConfig,
                   run_dir: Path, seed: int, hooks: TrainingHooks) -> Trainer:
        """The Trainer of a ZN task: the model as the simulator the run writes, validated on
        the task's validation part by channel W1."""
        simulator = LearnedSimulator(
            model, self.context.standardiser, model_name=self.simulator_name,
            device=self.context.device, round_counts=self.context.round_counts,
            rounding=self.context.rounding,
        )
        return Trainer(simulator, data, config, run_dir=run_dir, seed=seed,
                       progress=self.context.progress, hooks=hooks)

    # hooks of the strategy ---------------------------------------------------------

    def training_data(self, task: TaskData) -> TrainingData:
        """What the task's run trains and validates on: the task's own data here."""
        assert task.training is not None
        return task.training

    def training_config(self, task: TaskData) -> TrainingConfig:
        """The task's budget: the run's ``training:`` section here."""
        return self.context.training

    def prepare(self, task: TaskData) -> None:
        """Before the task's run."""

    def consolidate(self, task: TaskData) -> None:
        """After the task's run, with its best model in place."""


def counts_replay(stochastic_rounding: bool) -> ReplayImages:
    """Replay of ZN responses in log(1 + counts). With stochastic rounding, as the simulator
    gives them: integer photon counts with the model's expectation, like the data; else the
    model's own output unrounded, since rounding to the nearest count would erase the faint
    pixels whose light the model spreads below half a photon."""

    def replay(model: GenerativeModel, noise: torch.Tensor, conditions: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        if not stochastic_rounding:
            return model.generate(noise, conditions)
        counts = model.generate_counts(noise, conditions).float().clamp_min(0)
        jitter = torch.rand(counts.shape, generator=generator).to(counts)
        return torch.log1p(torch.floor(counts + jitter))

    return replay


class ReplayPlugin(FrozenReplaySource, PluginStrategy):
    """A plug-in that replays past tasks from a copy of its model frozen at the start of
    each task, for particles of the condition memory and fresh prior noise."""

    options_class = ReplayOptions
    options: ReplayOptions
    uses_condition_memory = True

    def replayed_images(self, noise: torch.Tensor, conditions: torch.Tensor,
                        generator: torch.Generator) -> torch.Tensor:
        """The frozen model's responses to (noise, conditions), in model space."""
        assert self.frozen is not None
        replay = self.context.replay_images or counts_replay(
            self.context.round_counts and self.context.rounding == "stochastic")
        with torch.no_grad():
            return replay(self.frozen, noise, conditions, generator)


def replay_share(config: TrainingConfig, ratio: float, past_tasks: int) -> tuple[int, int]:
    """(current rows, replayed rows of each past task) of a batch of ``config.batch_size``
    rows in all, ``ratio`` replayed rows of each past task per current row."""
    current = max(2, round(config.batch_size / (1 + ratio * past_tasks)))
    return current, max(1, round(ratio * current)) if past_tasks else 0


def with_rows(batch: Batch, images: torch.Tensor, conditions: torch.Tensor) -> Batch:
    """``batch`` with more rows (on its device), drawing from the same generator."""
    return Batch(torch.cat([batch.images, images.to(batch.images)]),
                 torch.cat([batch.conditions, conditions.to(batch.conditions)]),
                 batch.generator)
