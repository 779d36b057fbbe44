"""Shared by the production tests: the particle count, tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from calosim.data.transforms import ParticleStandardiser, log_counts
from calosim.models import LearnedSimulator, build_model
from calosim.models.base import Batch

# Two full random blocks of 1024 particles and a short last one.
N_PARTICLES = 2100
TINY_SAE = {"latent_dim": 4, "encoder_hidden": [32], "decoder_hidden": [16, 32],
            "noise_hidden": [16]}


def tiny_simulator(particles: np.ndarray, *, gate: bool = False,
                   round_counts: bool = False) -> LearnedSimulator:
    """An untrained tiny Sinkhorn AE (weights fixed by the torch seed)."""
    torch.manual_seed(0)
    model = build_model("e2e_sae", {**TINY_SAE, "gate": gate})
    return LearnedSimulator(model, ParticleStandardiser.fit(particles), model_name="e2e_sae",
                            round_counts=round_counts)


def shrunk(model_config: dict) -> dict:
    """A shipped model config with every option kept but narrow layers (<= 32 units,
    <= 8 feature maps) and short refinements, so that it trains in a second."""
    out = {}
    for key, value in model_config.items():
        if key.endswith("_hidden") and isinstance(value, list):
            value = [min(width, 32) for width in value]
        elif key.endswith("_channels") and isinstance(value, list):
            value = [min(width, 8) for width in value]
        elif key.endswith("_steps") and key != "critic_steps" and isinstance(value, int):
            value = min(value, 10)
        out[key] = value
    return out


def tiny_trained(config_path: Path, particles: np.ndarray, responses: np.ndarray,
                 steps: int = 40, learning_rate: float = 3e-3) -> LearnedSimulator:
    """The model of a shipped config (narrowed by ``shrunk``), trained ``steps`` batches of
    128 on the given Monte Carlo responses, rounding as the config says."""
    config = yaml.safe_load(config_path.read_text())
    model_config = dict(config["model"])
    name = model_config.pop("name")
    torch.manual_seed(0)
    model = build_model(name, shrunk(model_config))
    standardiser = ParticleStandardiser.fit(particles)
    conditions = torch.from_numpy(standardiser.transform(particles).astype(np.float32))
    images = torch.from_numpy(log_counts(responses).astype(np.float32))
    optimisers = model.configure_optimisers(learning_rate, 0.0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        rows = torch.randint(0, len(particles), (128,), generator=generator)
        model.training_step(Batch(images[rows], conditions[rows], generator), optimisers)
    return LearnedSimulator(model.eval(), standardiser, model_name=name,
                            round_counts=config.get("round_counts", True),
                            rounding=config.get("rounding", "nearest"))
