"""The plug-in surface of the continual loop: what every strategy is and shares.

A strategy owns one GenerativeModel (its final simulator) and learns tasks one at a time
from that task's data only, plus what it declares it keeps (``memory_bytes``). The loop
calls ``begin_task`` (which reseeds every random generator from (seed, task), so a run
resumed at a task boundary continues exactly as an uninterrupted one), ``learn_task``,
``end_task``, then evaluates ``simulator()``; ``state_dict`` is the task checkpoint.

Two kinds implement ``learn_task``: the plug-ins of the one Trainer, around any model
(calosim.continual.strategies.plugin: naive, joint, generative replay, EWC, SI, MeRGAN),
and the strategies written for one VAE, which train it in phases of their own through
``Strategy.fit`` (multiband, lifelong_vae, boovae, binplay; see vae.py).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from calosim.continual.memory import ConditionMemory
from calosim.continual.scenario import ContinualTask
from calosim.data.transforms import log_counts
from calosim.errors import CalosimError
from calosim.models.base import Batch, GenerativeModel, LearnedSimulator
from calosim.models.registry import registered_name
from calosim.training.hooks import TrainingHooks
from calosim.training.trainer import Trainer, TrainingConfig, TrainingData

StepLosses = Callable[[torch.Tensor, int], dict[str, torch.Tensor]]
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass
class StrategyOptions:
    """Base of each strategy's options (the ``continual.options`` mapping)."""


# (model, its task's data, budget, directory, seed, hooks) -> the Trainer that trains it
TrainerFactory = Callable[
    [GenerativeModel, TrainingData, TrainingConfig, Path, int, TrainingHooks], Trainer
]
# (model, noise, conditions, CPU generator) -> replayed images in model space
ReplayImages = Callable[
    [GenerativeModel, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor
]


@dataclass
class StrategyContext:
    """What the loop gives every strategy: transforms, device, seed, budget, and for the
    strategies that train through the Trainer (calosim.continual.strategies.plugin) the
    factory of its Trainer, the directory of the task runs and how replay is drawn."""

    standardiser: Any
    training: TrainingConfig = field(default_factory=TrainingConfig)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    condition_memory: int = 2000
    round_counts: bool = True
    rounding: str = "nearest"
    progress: bool = False
    model_name: str | None = None
    run_dir: Path | None = None
    trainer_factory: TrainerFactory | None = None
    replay_images: ReplayImages | None = None


@dataclass
class TaskData:
    """A task's training rows as tensors: model-space images (log(1 + counts) for ZN) and
    standardised conditions, with the task's standardised energy range; ``training``: the
    same rows with the task's validation part, as the Trainer reads them."""

    index: int
    name: str
    images: torch.Tensor
    conditions: torch.Tensor
    energy_range: tuple[float, float]
    training: TrainingData | None = None

    def __len__(self) -> int:
        return len(self.images)


def prepare_task(task: ContinualTask, standardiser: Any) -> TaskData:
    """The training part of ``task`` in model space, with its validation part."""
    conditions = np.asarray(standardiser.transform(task.train.particles), dtype=np.float32)
    responses = np.asarray(task.train.responses, dtype=np.float32)
    images = np.asarray(log_counts(responses), dtype=np.float32)
    # the energy column of two particles at the range's ends, in model units
    ends = np.zeros((2, conditions.shape[1]))
    ends[:, 0] = task.energy_range
    low, high = (float(e) for e in standardiser.transform(ends)[:, 0])
    training = TrainingData(
        responses=responses, conditions=conditions,
        validation_particles=np.asarray(task.val.particles),
        validation_responses=np.asarray(task.val.responses, dtype=np.float32),
    )
    return TaskData(task.index, task.name, torch.from_numpy(images),
                    torch.from_numpy(conditions), (low, high), training)


def frozen_copy(module: ModuleT) -> ModuleT:
    """An independent copy of ``module`` in eval mode whose parameters take no gradient."""
    frozen = copy.deepcopy(module).eval()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    return frozen


def task_seed(seed: int, task: int, purpose: int = 0) -> int:
    """Independent 63-bit seeds per (run seed, task, purpose)."""
    state = np.random.SeedSequence(seed, spawn_key=(task, purpose)).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


class Strategy(ABC):
    """A continual-learning strategy around one GenerativeModel."""

    name: ClassVar[str] = "strategy"
    # the registered model the strategy is written for; None: any model (Trainer plug-ins)
    model_name: ClassVar[str | None] = "cvae"
    options_class: ClassVar[type[StrategyOptions]] = StrategyOptions
    uses_condition_memory: ClassVar[bool] = False

    def __init__(self, model: GenerativeModel, options: StrategyOptions,
                 context: StrategyContext) -> None:
        self.context = context
        self.simulator_name = (context.model_name or type(self).model_name
                               or registered_name(model))
        self.model = model.to(context.device)
        self.options = options
        self.memory = ConditionMemory(context.condition_memory)
        self.generator = torch.Generator().manual_seed(task_seed(context.seed, 0, 1))

    # --------------------------------------------------------------- the plug-in

    def begin_task(self, task: int) -> None:
        """Reseed: everything random in a task derives from (seed, task)."""
        torch.manual_seed(task_seed(self.context.seed, task, 0))
        self.generator = torch.Generator().manual_seed(task_seed(self.context.seed, task, 1))

    @abstractmethod
    def learn_task(self, task: TaskData) -> dict[str, float]:
        """Train on ``task`` (its data only, plus what the strategy keeps); returns the
        mean losses of the last epoch, for the log."""

    def end_task(self, task: TaskData) -> None:
        """After learning ``task``: keep what the strategy declares it keeps."""
        if self.uses_condition_memory:
            self.memory.remember(task.index, task.conditions, self.generator)

    def simulator(self) -> LearnedSimulator:
        """The current model as a DetectorSimulator."""
        return LearnedSimulator(
            self.model, self.context.standardiser, model_name=self.simulator_name,
            device=self.context.device, round_counts=self.context.round_counts,
            rounding=self.context.rounding,
        )

    def memory_bytes(self) -> int:
        """Bytes kept between tasks besides the model's own weights."""
        return (self.memory.nbytes if self.uses_condition_memory else 0) + self.extra_bytes()

    def extra_bytes(self) -> int:
        """Bytes of strategy-specific state kept between tasks (penalties, stores)."""
        return 0

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "memory": self.memory.state_dict(),
                "extra": self.extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.memory.load_state_dict(state["memory"])
        self.load_extra_state(state["extra"])

    def extra_state(self) -> dict[str, Any]:
        """Strategy state beyond model and memory (tensors and plain values only)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of ``extra_state``."""
        if state:
            raise CalosimError(f"{self.name}: the checkpoint holds strategy state "
                               f"{sorted(state)} this strategy does not use")

    # ------------------------------------------------------------------ helpers

    def batch(self, images: torch.Tensor, conditions: torch.Tensor) -> Batch:
        """A Batch on the model's device drawing its noise from the task generator."""
        device = self.context.device
        return Batch(images.to(device), conditions.to(device), self.generator)

    def batches(self, n_rows: int) -> Iterator[torch.Tensor]:
        """Shuffled row indices, batch by batch; a last batch under 2 rows is dropped."""
        size = self.context.training.batch_size
        order = torch.randperm(n_rows, generator=self.generator)
        for start in range(0, n_rows, size):
            rows = order[start : start + size]
            if len(rows) >= 2:
                yield rows

    def fit(
        self,
        n_rows: int,
        parameters: list[nn.Parameter],
        step_losses: StepLosses,
        epochs: int,
        description: str,
        *,
        on_epoch: Callable[[int], None] | None = None,
        before_update: Callable[[], None] | None = None,
        after_update: Callable[[], None] | None = None,
    ) -> dict[str, float]:
        """Adam on ``parameters`` for ``epochs`` passes over ``n_rows`` rows.

        ``step_losses(rows, epoch)`` gives the losses of a batch ("loss" is minimised).
        ``on_epoch(epoch)`` runs before each epoch; ``before_update`` between backward and
        the optimiser step, ``after_update`` after it. Returns last-epoch mean losses.
        """
        training = self.context.training
        optimiser = torch.optim.Adam(parameters, lr=training.learning_rate,
                                     weight_decay=training.weight_decay)
        means: dict[str, float] = {}
        for epoch in range(epochs):
            for group in optimiser.param_groups:
                group["lr"] = training.learning_rate * training.lr_decay**epoch
            if on_epoch is not None:
                on_epoch(epoch)
            sums: dict[str, float] = {}
            n_batches = 0
            bar = tqdm(list(self.batches(n_rows)), disable=not self.context.progress,
                       leave=False, desc=f"{description} {epoch + 1}/{epochs}")
            for rows in bar:
                optimiser.zero_grad(set_to_none=True)
                losses = step_losses(rows, epoch)
                loss = losses["loss"]
                if not math.isfinite(loss.item()):
                    raise CalosimError(f"{self.name}: training diverged ({description}, epoch "
                                       f"{epoch + 1}); lower training.learning_rate")
                loss.backward()
                if training.grad_clip is not None:
                    nn.utils.clip_grad_norm_(parameters, training.grad_clip)
                if before_update is not None:
                    before_update()
                optimiser.step()
                if after_update is not None:
                    after_update()
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                n_batches += 1
            means = {key: value / max(n_batches, 1) for key, value in sums.items()}
        return means


class FrozenReplaySource:
    """Mixin of the replay strategies (list it first): from the second task on, a copy of
    the model frozen at the start of the task replays past tasks for remembered particles
    of the condition memory and fresh prior noise; the copy lives for one task only."""

    model: GenerativeModel
    memory: ConditionMemory
    context: StrategyContext
    frozen: GenerativeModel | None = None

    def prepare(self, task: TaskData) -> None:
        self.frozen = frozen_copy(self.model) if self.memory.tasks else None

    def consolidate(self, task: TaskData) -> None:
        self.frozen = None

    def replay_noise_and_conditions(
        self, rows_per_task: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior noise and remembered particles: ``rows_per_task`` of each past task."""
        assert self.frozen is not None
        conditions = torch.cat([self.memory.sample(t, rows_per_task, generator)
                                for t in self.memory.tasks])
        noise = torch.randn(len(conditions), *self.frozen.noise_shape, generator=generator)
        device = self.context.device
        return noise.to(device), conditions.to(device)
