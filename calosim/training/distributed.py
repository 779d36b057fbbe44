"""Multi-process (data-parallel) training under ``torchrun``.

``torchrun --nproc_per_node N -m calosim train ...`` starts N copies of the command with
WORLD_SIZE, RANK and LOCAL_RANK set; ``session`` joins them into one process group
(gloo on CPU, NCCL on CUDA with device ``cuda:LOCAL_RANK``). Without those variables
everything here is a no-op, so a plain run is untouched.

Why not torch's ``DistributedDataParallel`` wrapper: it synchronises gradients only for
backward passes of graphs built through the wrapper's ``forward``, while our models
optimise in their own ``training_step`` (``training_losses``, ``generate``, several
optimisers for a GAN). ``average_gradients`` does what DDP's reducer does, without
bucketing: every parameter's gradient is averaged over the processes as soon as
backward has accumulated it, so each optimiser (and any gradient clipping) sees the
gradient of the whole batch, whatever the model's ``training_step`` looks like.
Replicas start from rank 0's weights and buffers and so stay identical.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from calosim.errors import CalosimError


@dataclass(frozen=True)
class Context:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # Collectives of NCCL need their tensors on the process's GPU.
    collective_device: str = "cpu"

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This process's share of one batch: every world_size-th row, so the shares are
        disjoint, differ in size by one at most and together make the whole batch."""
        return rows[self.rank :: self.world_size]

    def average_gradients(self, model: torch.nn.Module) -> None:
        """Average each parameter's gradient over the processes once backward has
        accumulated it (see the module docstring)."""
        if not self.active:
            return
        world = self.world_size

        def hook(parameter: torch.Tensor) -> None:
            dist.all_reduce(parameter.grad)
            parameter.grad.div_(world)

        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.register_post_accumulate_grad_hook(hook)

    def broadcast_state(self, model: torch.nn.Module, *, parameters: bool = True) -> None:
        """Rank 0's buffers (and parameters) on every process. Buffers such as running
        statistics are updated from each process's own rows, so the trainer sends them
        after every step, as DDP does; parameters once, at the start."""
        if not self.active:
            return
        tensors = [*model.parameters()] if parameters else []
        with torch.no_grad():
            for tensor in [*tensors, *model.buffers()]:
                dist.broadcast(tensor, 0)

    def mean_losses(self, losses: Mapping[str, float]) -> dict[str, float]:
        """The losses averaged over the processes: the whole batch's, logged the same on
        every rank, and a divergence every rank sees at the same step."""
        if not self.active:
            return dict(losses)
        values = torch.tensor(list(losses.values()), dtype=torch.float64,
                              device=self.collective_device)
        dist.all_reduce(values)
        return dict(zip(losses, (values / self.world_size).tolist(), strict=True))

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one (e.g. the time budget, whose
        clocks differ), so all stop at the same step."""
        if not self.active:
            return flag
        value = torch.tensor([int(flag)], device=self.collective_device)
        dist.all_reduce(value)
        return bool(value.item())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable) on every process."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` in rank order (on every process)."""
        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = Context()


def _environment_int(name: str) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw)
    except ValueError:
        raise CalosimError(f"{name}={raw!r}: expected a whole number (set by torchrun)") from None


def context_from_environment(device: str) -> Context:
    """The context torchrun's variables describe (SINGLE without them) and the device
    string this process trains on."""
    world = _environment_int("WORLD_SIZE") if os.environ.get("WORLD_SIZE") else 1
    if world <= 1:
        return SINGLE
    rank = _environment_int("RANK")
    local_rank = _environment_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else rank
    if not 0 <= rank < world:
        raise CalosimError(f"RANK={rank} is outside WORLD_SIZE={world}")
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise CalosimError(f"multi-process training runs on cpu or cuda, not {device}")
    return Context(rank, world, local_rank, f"cuda:{local_rank}" if kind == "cuda" else "cpu")


@contextmanager
def session(device: str) -> Iterator[tuple[Context, str]]:
    """Join torchrun's process group for the duration (when launched by torchrun);
    yields the context and the device to train on (``cuda:LOCAL_RANK`` for cuda)."""
    context = context_from_environment(device)
    if not context.active:
        yield context, device
        return
    if context.collective_device == "cpu":
        backend, device = "gloo", "cpu"
    else:
        if not torch.cuda.is_available() or context.local_rank >= torch.cuda.device_count():
            raise CalosimError(
                f"process {context.rank} needs GPU {context.local_rank}, "
                f"but {torch.cuda.device_count()} are visible"
            )
        torch.cuda.set_device(context.local_rank)
        backend, device = "nccl", context.collective_device
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend, rank=context.rank, world_size=context.world_size)
    try:
        yield context, device
    finally:
        if owned:
            dist.destroy_process_group()
