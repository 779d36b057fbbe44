"""Shared by the production tests: the particle count and a tiny untrained model."""

from __future__ import annotations

import numpy as np
import torch

from calosim.data.transforms import ParticleStandardiser
from calosim.models import LearnedSimulator, build_model

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
