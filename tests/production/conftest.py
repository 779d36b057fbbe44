"""A small particle file and a tiny model file, so whole sharded runs take seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from production_helpers import N_PARTICLES, tiny_simulator

from calosim.data import ResponseWriter
from calosim.simulators.gun import ParticleGun
from calosim.training.checkpoint import save_model_file


@pytest.fixture(scope="session")
def gun_particles() -> tuple[np.ndarray, np.ndarray]:
    sample = ParticleGun().sample(N_PARTICLES, seed=11)
    return sample.particles, sample.pdg


@pytest.fixture(scope="session")
def particle_file(tmp_path_factory, gun_particles) -> Path:
    path = tmp_path_factory.mktemp("particles") / "particles.h5"
    particles, pdg = gun_particles
    with ResponseWriter(path, {"seed": 11}) as writer:
        writer.append(particles, None, pdg=pdg)
    return path


@pytest.fixture(scope="session")
def model_file(tmp_path_factory, gun_particles) -> Path:
    """A model that does not round its counts: stored channels then differ from the
    channels of the stored (rounded) responses, which a merge must not lose."""
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_model_file(path, tiny_simulator(gun_particles[0]), seed=1)
