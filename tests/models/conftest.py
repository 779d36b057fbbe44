"""Small synthetic inputs for the model tests: Poisson blob images whose position and
brightness follow the (standardised) conditions, so there is something to learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calosim.models.sinkhorn_ae import SinkhornAEConfig

TINY_SAE = {
    "latent_dim": 4,
    "noise_dim": 10,
    "encoder_hidden": [32],
    "decoder_hidden": [16, 32],
    "noise_hidden": [16, 16],
    "sinkhorn_blur": 0.1,
    "gate": False,
}


def blob_counts(conditions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 44, 44) Poisson photon counts of a Gaussian spot placed by conditions[:, 1:3]
    with a mean total set by conditions[:, 0]."""
    grid = np.arange(44, dtype=np.float64)
    centre_x = 21.5 + 6.0 * np.tanh(conditions[:, 1])[:, None, None]
    centre_y = 21.5 + 6.0 * np.tanh(conditions[:, 2])[:, None, None]
    shape = np.exp(-((grid[None, :, None] - centre_x) ** 2 + (grid[None, None, :] - centre_y) ** 2)
                   / (2 * 2.5**2))
    total = 200.0 * np.exp(0.5 * conditions[:, 0])[:, None, None]
    return rng.poisson(total * shape / shape.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


@pytest.fixture
def tiny_config() -> SinkhornAEConfig:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY_SAE.items()}
    return SinkhornAEConfig(**values)


@pytest.fixture
def synthetic_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(64, 44, 44) log(1 + counts) images and their (64, 9) standardised conditions."""
    rng = np.random.default_rng(7)
    conditions = rng.standard_normal((64, 9)).astype(np.float32)
    images = np.log1p(blob_counts(conditions, rng))
    return torch.from_numpy(images), torch.from_numpy(conditions)
