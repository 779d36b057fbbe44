"""Checks shared by the tests of the baseline models (cVAE, cWAE, cGAN)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from calosim.data.transforms import ParticleStandardiser
from calosim.models import Batch, GenerativeModel, LearnedSimulator, build_model
from calosim.training.checkpoint import load_simulator, save_model_file


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: the tiny models gain nothing from more, and on a busy
    shared machine a second spinning thread slows every step down many times."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def make_batch(images: torch.Tensor, conditions: torch.Tensor, seed: int = 0) -> Batch:
    return Batch(images, conditions, torch.Generator().manual_seed(seed))


def raw_particles(n: int, seed: int = 0) -> np.ndarray:
    """(n, 9) particle table with energies in GeV (the standardiser makes them O(1))."""
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n, 9)).astype(np.float32)
    table[:, 0] = rng.uniform(10, 3000, n)
    table[:, 7] = np.abs(table[:, 7]) * 500.0  # mass, MeV
    table[:, 8] = np.rint(table[:, 8])  # charge, whole multiples of e
    return table


def sae_model_file(path: Path, config: dict) -> Path:
    """A randomly initialised (torch seed 0) e2e SAE of ``config`` in a model file."""
    torch.manual_seed(0)
    simulator = LearnedSimulator(build_model("e2e_sae", config),
                                 ParticleStandardiser.fit(raw_particles(100)),
                                 model_name="e2e_sae")
    return save_model_file(path, simulator, seed=0)


def seeded_model(name: str, config: dict, seed: int = 11) -> GenerativeModel:
    torch.manual_seed(seed)
    return build_model(name, config)


def weighted_reconstruction(losses: dict[str, torch.Tensor], config) -> float:
    """The reconstruction part of an autoencoder's loss, rebuilt from its logged parts."""
    return config.reconstruction_weight * (
        losses["mse"] + config.laplacian_weight * losses["laplacian"]
        + config.channel_weight * losses["channels"]
    ).item()


def assert_generation_is_deterministic(name: str, config: dict, conditions: torch.Tensor) -> None:
    """Same seed -> same weights -> same generation; other noise -> other generation."""
    n_rows = conditions.shape[0]
    outputs = []
    for _ in range(2):
        model = seeded_model(name, config).eval()
        noise = torch.randn(n_rows, *model.noise_shape, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            outputs.append(model.generate(noise, conditions))
    assert outputs[0].shape == (n_rows, 44, 44)
    assert torch.equal(outputs[0], outputs[1])
    other = torch.randn(n_rows, *model.noise_shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert not torch.equal(outputs[0], model.generate(other, conditions))


def assert_generation_depends_on_conditions(model: GenerativeModel, conditions: torch.Tensor):
    noise = torch.randn(conditions.shape[0], *model.noise_shape,
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.equal(model.generate(noise, conditions),
                               model.generate(noise, conditions + 1.0))


def assert_one_step_decreases_the_loss(model: GenerativeModel, images, conditions) -> None:
    """One step of the model's own optimiser lowers its loss on the same batch and noise."""
    optimisers = model.configure_optimisers(1e-3, 0.0)
    before = model.training_losses(make_batch(images, conditions, seed=1))["loss"].item()
    step = model.training_step(make_batch(images, conditions, seed=1), optimisers)
    after = model.training_losses(make_batch(images, conditions, seed=1))["loss"].item()
    assert step["loss"] == before
    assert after < before


def assert_save_load_generates_identically(
    tmp_path: Path, name: str, config: dict, image_maker: str
) -> None:
    """A model file written by calosim.training.checkpoint reloads to the same responses.

    ``image_maker``: the attribute holding the model's ConditionalImageDecoder (mlp kind).
    """
    model = seeded_model(name, config)
    with torch.no_grad():  # brighter output than a fresh init, so rounding keeps photons
        getattr(model, image_maker).decoder.mlp.last_linear.bias.fill_(1.0)
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(200)),
                                 model_name=name)
    path = save_model_file(tmp_path / f"{name}.pt", simulator, seed=7)
    loaded = load_simulator(path)
    particles = raw_particles(300, seed=1)
    original = simulator.simulate(particles, seed=5)
    assert original.sum() > 0
    assert loaded.name == name and loaded.model.config == model.config
    assert np.array_equal(loaded.simulate(particles, seed=5), original)
    assert not np.array_equal(loaded.simulate(particles, seed=6), original)
