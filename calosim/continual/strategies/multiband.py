"""Multiband VAE training (thesis ch. 9, sections 9.3 and 9.6), conditioned on the particle.

Per task i, with the epoch budget split between the phases:
1. Local training (eq. 9.1): a local copy of the model (encoder, translator, decoder)
   learns task i alone as a VAE with a continuous and a binary latent (Gumbel-softmax at
   a temperature annealed over the phase); the bit frequencies of task i are the mean
   bit probabilities over its data in the last local epoch. Task 1 is trained this way
   in full; later tasks keep only the local encoder (the local decoder is dropped).
2. Global training, with replay of past tasks from a copy of translator and decoder
   frozen at the start of the task: prior draws (lambda_c ~ N(0, I), bits with task l's
   frequencies, particles of task l from the condition memory) decoded by the frozen
   copy are the targets of band l; the current data, encoded by the local encoder, are
   the pairs of band i.
   a. translator alone, global decoder frozen (eq. 9.2);
   b. translator and global decoder jointly (eq. 9.3), with controlled forgetting
      (eq. 9.4): a replay pair whose translated code z_j has cosine similarity >= gamma
      with the code of a current example (pool of current data, re-encoded each epoch)
      takes that example (response and particle) as its target instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from calosim.continual.strategies.base import Strategy, TaskData, frozen_copy
from calosim.continual.strategies.vae import ReplayOptions, replay_rows_per_task
from calosim.models.multiband_vae import MultibandVAE


@dataclass
class MultibandOptions(ReplayOptions):
    """Options of Multiband training (``continual.options``)."""

    gamma: float = 0.9
    local_fraction: float = 0.3
    translator_fraction: float = 0.1
    temperature_start: float = 1.0
    temperature_end: float = 0.5
    forgetting_pool: int = 4096
    local_init: Literal["copy", "fresh"] = "copy"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not -1 <= self.gamma:
            raise ValueError(f"gamma must be at least -1 (a cosine similarity), got {self.gamma}")
        for name in ("local_fraction", "translator_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}")
        if not 0 < self.temperature_end <= self.temperature_start:
            raise ValueError("temperatures must satisfy 0 < temperature_end <= temperature_start")
        if self.forgetting_pool < 1:
            raise ValueError(f"forgetting_pool must be positive, got {self.forgetting_pool}")


def phase_epochs(total: int, task: int, options: MultibandOptions) -> tuple[int, int, int]:
    """(local, translator-only, joint) epochs of ``task`` from a budget of ``total``:
    task 1 is all local; later tasks give each phase at least one epoch."""
    if task == 0:
        return total, 0, 0
    local = max(1, round(options.local_fraction * total))
    translator = max(1, round(options.translator_fraction * total))
    return local, translator, max(1, total - local - translator)


def temperature_at(epoch: int, epochs: int, options: MultibandOptions) -> float:
    """Gumbel-softmax temperature of a local epoch: geometric from start to end."""
    if epochs <= 1:
        return options.temperature_end
    ratio = options.temperature_end / options.temperature_start
    return options.temperature_start * ratio ** (epoch / (epochs - 1))


def controlled_forgetting(
    replay_codes: torch.Tensor, pool_codes: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 9.4: which replay codes to forget and the current example replacing each.

    Returns (mask, nearest): mask[j] is True when max_q cos(z_j, z_q) >= gamma over the
    pool codes z_q; nearest[j] is the index of that most similar pool code.
    """
    similarity = F.normalize(replay_codes, dim=1) @ F.normalize(pool_codes, dim=1).T
    best, nearest = similarity.max(dim=1)
    return best >= gamma, nearest


@dataclass
class ForgettingPool:
    """Current examples (log images, conditions) and their translated codes z: the set
    Z^i of eq. 9.4, refreshed each epoch of the global phase."""

    codes: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    images: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    conditions: torch.Tensor = field(default_factory=lambda: torch.empty(0))


def substitute_forgotten(
    replay_codes: torch.Tensor, targets: torch.Tensor, conditions: torch.Tensor,
    pool: ForgettingPool, gamma: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replay targets and particles with the forgotten pairs (eq. 9.4) replaced by their
    most similar current example; also the mask of replaced rows."""
    forget, nearest = controlled_forgetting(replay_codes, pool.codes, gamma)
    targets = torch.where(forget[:, None, None], pool.images[nearest], targets)
    conditions = torch.where(forget[:, None], pool.conditions[nearest], conditions)
    return targets, conditions, forget


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Temporarily take ``module``'s parameters out of autograd."""
    flags = [p.requires_grad for p in module.parameters()]
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)


class MultibandStrategy(Strategy):
    """Local band training, then translator and global decoder consolidation."""

    name = "multiband"
    model_name = "multiband_vae"
    options_class = MultibandOptions
    options: MultibandOptions
    model: MultibandVAE
    uses_condition_memory = True

    def learn_task(self, task: TaskData) -> dict[str, float]:
        local_epochs, translator_epochs, joint_epochs = phase_epochs(
            self.context.training.epochs, task.index, self.options)
        frozen = frozen_copy(self.model) if task.index > 0 else None
        losses = {f"local_{k}": v for k, v in self.local_phase(task, local_epochs).items()}
        if frozen is not None:
            pool = ForgettingPool()
            with frozen_parameters(self.model.decoder):
                self.global_phase(task, frozen, pool, translator_epochs, "translator",
                                  list(self.model.translator.parameters()))
            joint_parameters = [*self.model.translator.parameters(),
                                *self.model.decoder.parameters()]
            joint = self.global_phase(task, frozen, pool, joint_epochs, "global",
                                      joint_parameters)
            losses.update({f"global_{k}": v for k, v in joint.items()})
        return losses

    # -------------------------------------------------------------- local phase

    def local_model(self, task: TaskData) -> MultibandVAE:
        """Task 1 trains the model itself; later tasks a copy (or a fresh model)."""
        if task.index == 0:
            return self.model
        if self.options.local_init == "fresh":
            return MultibandVAE(self.model.config).to(self.context.device)
        return copy.deepcopy(self.model)

    def local_phase(self, task: TaskData, epochs: int) -> dict[str, float]:
        local = self.local_model(task)
        local.train()
        bit_sums = torch.zeros(self.model.config.n_bits)
        counted = [0]

        def step(rows: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
            batch = self.batch(task.images[rows], task.conditions[rows])
            tasks = torch.full((len(rows),), task.index, dtype=torch.long,
                               device=self.context.device)
            losses, probabilities = local.local_losses(batch, tasks)
            if epoch == epochs - 1:
                bit_sums.add_(probabilities.sum(dim=0).cpu())
                counted[0] += len(rows)
            return losses

        def set_temperature(epoch: int) -> None:
            local.temperature.fill_(temperature_at(epoch, epochs, self.options))

        losses = self.fit(len(task), list(local.parameters()), step, epochs,
                          f"task {task.index + 1} local", on_epoch=set_temperature)
        if local is not self.model:
            self.model.encoder.load_state_dict(local.encoder.state_dict())
        self.model.record_task(task.index, bit_sums / max(counted[0], 1), task.energy_range)
        return losses

    # ------------------------------------------------------------- global phase

    def encode_current(self, images: torch.Tensor, conditions: torch.Tensor,
                       *, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Local latents of current data from the (frozen) local encoder: posterior
        samples and Bernoulli bits, or (``sample=False``) means and rounded bits."""
        with torch.no_grad():
            mean, log_variance, bit_logits = self.model.encode(images, conditions)
            probabilities = torch.sigmoid(bit_logits)
            if not sample:
                return mean, (probabilities > 0.5).to(mean.dtype)
            noise = torch.randn(mean.shape, generator=self.generator).to(mean)
            uniform = torch.rand(probabilities.shape, generator=self.generator).to(mean)
            return mean + (0.5 * log_variance).exp() * noise, (uniform < probabilities).to(mean)

    def refresh_pool(self, task: TaskData, pool: ForgettingPool) -> None:
        """Codes z = t(q(x), i) of a random pool of current examples (eq. 9.4's Z^i)."""
        rows = torch.randperm(len(task), generator=self.generator)[: self.options.forgetting_pool]
        device = self.context.device
        images, conditions = task.images[rows].to(device), task.conditions[rows].to(device)
        continuous, bits = self.encode_current(images, conditions, sample=False)
        with torch.no_grad():
            tasks = torch.full((len(rows),), task.index, dtype=torch.long, device=device)
            pool.codes = self.model.translate(continuous, bits, tasks)
        pool.images, pool.conditions = images, conditions

    def replay_pairs(
        self, frozen: MultibandVAE
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(continuous, bits, tasks, conditions, targets) of prior draws of past bands,
        the targets decoded by the frozen translator and decoder."""
        n = replay_rows_per_task(self.options, self.context.training.batch_size)
        past = self.memory.tasks
        tasks = torch.repeat_interleave(torch.tensor(past, dtype=torch.long), n)
        conditions = torch.cat([self.memory.sample(t, n, self.generator) for t in past])
        noise = torch.randn(len(tasks), *frozen.noise_shape, generator=self.generator)
        device = self.context.device
        noise, tasks, conditions = noise.to(device), tasks.to(device), conditions.to(device)
        continuous, bits = frozen.sample_local(noise, tasks)
        with torch.no_grad():
            targets = frozen.decode(frozen.translate(continuous, bits, tasks), conditions)
        return continuous, bits, tasks, conditions, targets

    def global_phase(
        self, task: TaskData, frozen: MultibandVAE, pool: ForgettingPool, epochs: int,
        stage: str, parameters: list[nn.Parameter],
    ) -> dict[str, float]:
        device = self.context.device
        self.model.train()

        def step(rows: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
            images = task.images[rows].to(device)
            conditions = task.conditions[rows].to(device)
            continuous, bits = self.encode_current(images, conditions, sample=True)
            tasks = torch.full((len(rows),), task.index, dtype=torch.long, device=device)
            r_continuous, r_bits, r_tasks, r_conditions, r_targets = self.replay_pairs(frozen)
            codes = self.model.translate(torch.cat([continuous, r_continuous]),
                                         torch.cat([bits, r_bits]), torch.cat([tasks, r_tasks]))
            r_targets, r_conditions, forget = substitute_forgotten(
                codes[len(rows):].detach(), r_targets, r_conditions, pool, self.options.gamma)
            reconstruction = self.model.decode(codes, torch.cat([conditions, r_conditions]))
            losses = self.model.reconstruction_losses(torch.cat([images, r_targets]),
                                                      reconstruction)
            losses["loss"] = losses.pop("weighted")
            losses["forgotten"] = forget.float().mean()
            return losses

        return self.fit(len(task), parameters, step, epochs, f"task {task.index + 1} {stage}",
                        on_epoch=lambda epoch: self.refresh_pool(task, pool))
