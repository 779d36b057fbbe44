"""BinPlay-style rehearsal (thesis ch. 8): past data memorised by a binary latent
autoencoder whose codes are computed from sample indices, not stored.

The code of sample i of task t (section 8.3.2): for each of several primes p != 2, the
m least significant bits of i * p^floor(m ln 2 / ln p) (distinct for i < 2^m, Lemma 1),
prefixed by the same code of the task index; bits are used as -1 / +1.

Per task:
1. the conditional VAE (the simulator) trains on the current data plus pairs the memory
   decodes from the codes of random (past task, index) pairs: rehearsal of past
   (response, particle) pairs without storing them;
2. the memory learns the current task (section 8.3.1): its encoder maps each example
   to a binary code, assigned greedily to the nearest still-free code of the task
   (Algorithm 2, re-run each epoch in a fresh random order after ``warmup_epochs`` of
   plain autoencoding), with an L2 pull of the encoding to its code; its decoder learns to
   reproduce (response, particle) from the assigned code, while replay pairs
   <c(i), frozen decoder(c(i))> keep the past tasks' samples.
Between tasks only the memory network and the number of samples per task are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calosim.continual.strategies.base import TaskData, frozen_copy
from calosim.continual.strategies.vae import ReplayOptions, VAEStrategy, replay_rows_per_task
from calosim.data.schema import N_ATTRIBUTES, N_PIXELS, RESPONSE_SHAPE
from calosim.errors import CalosimError
from calosim.nn.conditioning import ConditionalImageEncoder
from calosim.nn.mlp import MLP


@dataclass
class BinPlayOptions(ReplayOptions):
    """BinPlay options: code layout, memory network, assignment schedule."""

    subvector_primes: tuple[int, ...] = (3, 5, 7, 11)
    subvector_bits: int = 16
    task_bits: int = 8
    memory_hidden: tuple[int, ...] = (512,)
    warmup_epochs: int = 1
    assignment_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.subvector_primes or any(not _is_odd_prime(p) for p in self.subvector_primes):
            raise ValueError("subvector_primes must be odd primes")
        if not 2 <= self.subvector_bits <= 30 or not 2 <= self.task_bits <= 30:
            raise ValueError("subvector_bits and task_bits must lie in 2..30")
        if not self.memory_hidden or min(self.memory_hidden) < 1:
            raise ValueError("memory_hidden needs at least one positive width")
        if self.warmup_epochs < 0 or self.assignment_weight < 0:
            raise ValueError("warmup_epochs and assignment_weight must not be negative")

    @property
    def code_bits(self) -> int:
        return self.task_bits + self.subvector_bits * len(self.subvector_primes)


def _is_odd_prime(n: int) -> bool:
    return n > 2 and all(n % k for k in range(2, math.isqrt(n) + 1))


def index_bits(indices: torch.Tensor, prime: int, bits: int) -> torch.Tensor:
    """The ``bits`` least significant bits of i * prime^floor(bits ln 2 / ln prime), as
    -1 / +1, for integer indices (N,) -> (N, bits) (thesis eq. 8.1)."""
    power = prime ** math.floor(bits * math.log(2) / math.log(prime))
    values = (indices.long() * power) % (1 << bits)
    ones = (values[:, None] >> torch.arange(bits)) & 1
    return ones.float() * 2 - 1


def binary_codes(task: int | torch.Tensor, indices: torch.Tensor,
                 options: BinPlayOptions) -> torch.Tensor:
    """Codes of samples ``indices`` of ``task``: the task code, then one block per prime."""
    tasks = torch.as_tensor(task, dtype=torch.long).expand(len(indices))
    blocks = [index_bits(tasks, options.subvector_primes[0], options.task_bits)]
    blocks += [index_bits(indices, p, options.subvector_bits) for p in options.subvector_primes]
    return torch.cat(blocks, dim=1)


def greedy_assignment(embeddings: torch.Tensor, codes: torch.Tensor,
                      order: torch.Tensor) -> torch.Tensor:
    """Algorithm 2: in ``order``, each example takes the nearest code no earlier example
    took; returns the code index of every example (a permutation when sizes match)."""
    if len(codes) < len(embeddings):
        raise ValueError("fewer codes than examples to assign")
    distances = torch.cdist(embeddings.float(), codes.float()).numpy()
    taken = np.zeros(len(codes), dtype=bool)
    assigned = np.empty(len(embeddings), dtype=np.int64)
    for row in order.tolist():
        choice = int(np.where(taken, np.inf, distances[row]).argmin())
        taken[choice] = True
        assigned[row] = choice
    return torch.from_numpy(assigned)


class BinaryMemory(nn.Module):
    """Encoder (response, particle) -> tanh code; decoder code -> (response, particle)."""

    def __init__(self, options: BinPlayOptions) -> None:
        super().__init__()
        hidden = tuple(options.memory_hidden)
        self.encoder = ConditionalImageEncoder(RESPONSE_SHAPE, N_ATTRIBUTES, hidden,
                                               options.code_bits, activation_name="leaky_relu")
        self.decoder = MLP(options.code_bits, hidden[::-1], N_PIXELS + N_ATTRIBUTES,
                           activation_name="leaky_relu")

    def encode(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.encoder(images, conditions))

    def decode(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.decoder(codes)
        return out[:, :N_PIXELS].view(-1, *RESPONSE_SHAPE), out[:, N_PIXELS:]


def pair_loss(decoded: tuple[torch.Tensor, torch.Tensor], images: torch.Tensor,
              conditions: torch.Tensor) -> torch.Tensor:
    """MSE of a decoded (response, particle) pair against the target pair."""
    return F.mse_loss(decoded[0], images) + F.mse_loss(decoded[1], conditions)


class BinPlayStrategy(VAEStrategy):
    """The conditional VAE rehearsed with (response, particle) pairs from BinaryMemory."""

    name = "binplay"
    options_class = BinPlayOptions
    options: BinPlayOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.binary_memory = BinaryMemory(self.options).to(self.context.device)
        self.task_sizes: list[int] = []

    # ---------------------------------------------------------------- rehearsal

    def sample_codes(self, n_per_task: int) -> torch.Tensor:
        """Codes of uniformly drawn samples of every past task."""
        codes = []
        for task, size in enumerate(self.task_sizes):
            indices = torch.randint(size, (n_per_task,), generator=self.generator)
            codes.append(binary_codes(task, indices, self.options))
        return torch.cat(codes).to(self.context.device)

    def rehearse(self, memory: BinaryMemory) -> tuple[torch.Tensor, torch.Tensor]:
        """(responses, particles) of past samples decoded by ``memory`` (no gradient)."""
        n = replay_rows_per_task(self.options, self.context.training.batch_size)
        with torch.no_grad():
            return memory.decode(self.sample_codes(n))

    def batch_losses(self, task: TaskData, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        images, conditions = task.images[rows], task.conditions[rows]
        if self.task_sizes:
            past_images, past_conditions = self.rehearse(self.binary_memory)
            images = torch.cat([images.to(past_images.device), past_images])
            conditions = torch.cat([conditions.to(past_conditions.device), past_conditions])
        return self.model.training_losses(self.batch(images, conditions))

    # ------------------------------------------------------------------ memory

    def consolidate(self, task: TaskData) -> None:
        if len(task) > 2**self.options.subvector_bits:
            raise CalosimError(f"binplay: task {task.index + 1} has {len(task)} samples, more "
                               f"than the 2^{self.options.subvector_bits} codes of a task; "
                               "raise continual.options.subvector_bits")
        frozen = frozen_copy(self.binary_memory) if self.task_sizes else None
        codes = binary_codes(task.index, torch.arange(len(task)), self.options)
        assigned = torch.arange(len(task))
        device = self.context.device
        epochs = self.context.training.epochs
        # the last epoch at least trains the decoder on the codes it will be asked for
        warmup = min(self.options.warmup_epochs, epochs - 1)

        def assign(epoch: int) -> None:
            nonlocal assigned
            if epoch < warmup:
                return
            with torch.no_grad():
                embeddings = torch.cat([
                    self.binary_memory.encode(task.images[rows].to(device),
                                              task.conditions[rows].to(device)).cpu()
                    for rows in torch.arange(len(task)).split(1024)
                ])
            order = torch.randperm(len(task), generator=self.generator)
            assigned = greedy_assignment(embeddings, codes, order)

        def step(rows: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
            images, conditions = task.images[rows].to(device), task.conditions[rows].to(device)
            losses: dict[str, torch.Tensor] = {}
            if epoch < warmup:
                encoded = self.binary_memory.encode(images, conditions)
                losses["reconstruction"] = pair_loss(self.binary_memory.decode(encoded),
                                                     images, conditions)
                losses["loss"] = losses["reconstruction"]
            else:
                target_codes = codes[assigned[rows]].to(device)
                encoded = self.binary_memory.encode(images, conditions)
                losses["reconstruction"] = pair_loss(self.binary_memory.decode(target_codes),
                                                     images, conditions)
                losses["assignment"] = (encoded - target_codes).square().sum(dim=1).mean()
                losses["loss"] = (losses["reconstruction"]
                                  + self.options.assignment_weight * losses["assignment"])
            if frozen is not None:
                n = replay_rows_per_task(self.options, self.context.training.batch_size)
                past_codes = self.sample_codes(n)
                with torch.no_grad():
                    targets = frozen.decode(past_codes)
                losses["replay"] = pair_loss(self.binary_memory.decode(past_codes), *targets)
                losses["loss"] = losses["loss"] + losses["replay"]
            return losses

        self.fit(len(task), list(self.binary_memory.parameters()), step, epochs,
                 f"task {task.index + 1} memory", on_epoch=assign)
        self.task_sizes.append(len(task))

    def extra_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.binary_memory.parameters())

    def extra_state(self) -> dict[str, Any]:
        return {"memory": self.binary_memory.state_dict(), "task_sizes": list(self.task_sizes)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.binary_memory.load_state_dict(state["memory"])
        self.task_sizes = [int(n) for n in state["task_sizes"]]
