"""A tiny Monte Carlo dataset and a tiny e2e SAE config, so whole runs take seconds."""

from __future__ import annotations

from typing import Any

import pytest

from calosim.data.dataset import ZDCDataset
from calosim.simulators.gun import simulate_dataset


@pytest.fixture(scope="session")
def tiny_dataset() -> ZDCDataset:
    particles, pdg, responses = simulate_dataset(500, seed=3)
    return ZDCDataset(responses=responses, particles=particles, pdg=pdg)


@pytest.fixture
def tiny_run_config() -> dict[str, Any]:
    return {
        "model": {
            "name": "e2e_sae",
            "latent_dim": 4,
            "encoder_hidden": [32],
            "decoder_hidden": [16, 32],
            "noise_hidden": [16],
            "sinkhorn_blur": 0.1,
        },
        "training": {"epochs": 3, "batch_size": 100, "validation_size": 50, "patience": None},
        "seed": 5,
        "test_size": 50,
    }
