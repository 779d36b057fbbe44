"""The toy data and tiny configs of the continual tests, so whole runs take seconds.

Toy responses: a Poisson-noised Gaussian spot (sigma 2.5 fibres) whose centre moves
along the image diagonal with the energy and whose brightness grows with it; the low and
high halves of the energy range (two tasks) light opposite corners of the calorimeter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calosim.data.dataset import ZDCDataset

# kl_weight and channel_weight pinned: the tests must not move with the models' defaults
TINY_BACKBONE = {"latent_dim": 4, "encoder_hidden": [32], "decoder_hidden": [16, 64],
                 "kl_weight": 1e-3, "channel_weight": 1.0}


def toy_mean_response(energy: np.ndarray) -> np.ndarray:
    """(N, 44, 44) mean photon counts of the toy responses at energies (N,) in GeV."""
    grid = np.arange(44, dtype=np.float64)
    centre = 8.0 + 28.0 * (np.asarray(energy, np.float64) - 100.0) / 1900.0
    spot = np.exp(-((grid[None, :, None] - centre[:, None, None]) ** 2
                    + (grid[None, None, :] - centre[:, None, None]) ** 2) / (2 * 2.5**2))
    spot /= spot.sum(axis=(1, 2), keepdims=True)
    return 0.5 * np.asarray(energy, np.float64)[:, None, None] * spot


def toy_dataset(n: int, seed: int) -> ZDCDataset:
    """``n`` toy particles (energies uniform in 100-2000 GeV) with Poisson responses."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(100.0, 2000.0, n)
    particles = np.zeros((n, 9), dtype=np.float32)
    particles[:, 0] = energy
    particles[:, 6] = energy  # Pz
    responses = rng.poisson(toy_mean_response(energy)).astype(np.float32)
    return ZDCDataset(responses=responses, particles=particles)


def tiny_config(strategy: str, *, epochs: int = 2, n_tasks: int = 2,
                options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A continual config of ``strategy`` with tiny networks and budget."""
    model: dict[str, Any] = dict(TINY_BACKBONE)
    if strategy == "binplay":
        options = {"memory_hidden": [32], "subvector_bits": 10, **(options or {})}
    if strategy == "boovae":
        options = {"components_per_task": 3, "candidates": 32, "monte_carlo": 8,
                   **(options or {})}
    if strategy in ("naive", "joint", "generative_replay", "ewc", "si", "mergan"):
        model["name"] = "cvae"  # the Trainer's plug-ins train any model
    if strategy == "multiband":
        model.update({"latent_dim": 3, "n_bits": 2, "global_dim": 8, "translator_hidden": [16],
                      "code_hidden": [4], "code_features": 4})
    return {
        "continual": {"strategy": strategy, "n_tasks": n_tasks, "condition_memory": 64,
                      "options": options or {}},
        "model": model,
        "training": {"epochs": epochs, "batch_size": 32, "learning_rate": 1e-2},
        "seed": 7,
        "test_size": 60,
        "floor": "none",  # the toy is no Monte Carlo data: it has no floor
    }
