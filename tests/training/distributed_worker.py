"""Run by tests/training/test_multiprocess_training.py under torchrun: trains tiny models in every
process and saves each process's final weights, so the test can compare the replicas.

Usage: distributed_worker.py DATA.h5 OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from calosim.training import run
from calosim.training.distributed import session

_fit = run.Trainer.fit


def _fit_and_save_replica(self: run.Trainer, **options: Any) -> Any:
    # The weights a process ends with never reach a file otherwise: only rank 0 writes.
    outcome = _fit(self, **options)
    name = f"{self.run_dir.name}.rank{self.context.rank}.pt"
    torch.save(self.model.state_dict(), self.run_dir.parent / name)
    return outcome


def main(data: str, out: Path) -> None:
    run.Trainer.fit = _fit_and_save_replica
    sae = {
        "model": {"name": "e2e_sae", "latent_dim": 4, "encoder_hidden": [32],
                  "decoder_hidden": [16, 32], "noise_hidden": [16], "sinkhorn_blur": 0.1,
                  "refine_steps": 10, "refine_batch_size": 64},
        "training": {"epochs": 2, "batch_size": 100, "validation_size": 50, "patience": None,
                     "ema_decay": 0.9},
        "seed": 5, "test_size": 50,
    }
    # A GAN: two optimisers, several backward passes a step, batch-norm buffers.
    gan = {
        "model": {"name": "cgan", "generator_hidden": [16, 32], "critic_hidden": [16, 8],
                  "critic_channels": [4, 8], "critic_steps": 2, "loss": "bce",
                  "critic_batch_norm": True},
        "training": {"epochs": 1, "batch_size": 100, "validation_size": 50, "patience": None},
        "seed": 6, "test_size": 50,
    }
    # Every run in one process group: torchrun's group is joined once per launch.
    with session("cpu"):
        run.train_from_config(sae, data=data, out_dir=out / "sae", progress=False)
        run.train_from_config(sae, data=data, out_dir=out / "resumed", progress=False,
                              overrides=["training.epochs=1"])
        run.train_from_config(sae, data=data, out_dir=out / "resumed", progress=False,
                              resume=True)
        run.train_from_config(gan, data=data, out_dir=out / "gan", progress=False)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
