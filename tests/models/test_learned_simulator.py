"""LearnedSimulator: the DetectorSimulator contract for any trained generative model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calosim.data.transforms import ParticleStandardiser
from calosim.errors import CalosimError
from calosim.models import LearnedSimulator
from calosim.models.sinkhorn_ae import SinkhornAEConfig, SinkhornAutoencoder
from calosim.simulators.base import RANDOM_BLOCK


def particles(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n, 9)).astype(np.float32)
    table[:, 0] = rng.uniform(10, 3000, n)  # energy, GeV
    table[:, 7] = np.abs(table[:, 7]) * 500.0  # mass, MeV
    table[:, 8] = np.rint(table[:, 8])  # charge, whole multiples of e
    return table


@pytest.fixture
def simulator(tiny_config: SinkhornAEConfig) -> LearnedSimulator:
    torch.manual_seed(0)
    model = SinkhornAutoencoder(tiny_config)
    with torch.no_grad():  # brighter output than a fresh init, so rounding keeps photons
        model.decoder.mlp.last_linear.bias.fill_(1.0)
    return LearnedSimulator(model, ParticleStandardiser.fit(particles(500)), model_name="e2e_sae")


def test_responses_are_non_negative_integer_counts(simulator: LearnedSimulator) -> None:
    responses = simulator.simulate(particles(300), seed=1)
    assert responses.shape == (300, 44, 44) and responses.dtype == np.float32
    assert (responses >= 0).all()
    assert np.array_equal(responses, np.round(responses))
    assert responses.sum() > 0


def test_without_rounding_counts_are_continuous(simulator: LearnedSimulator) -> None:
    simulator.round_counts = False
    responses = simulator.simulate(particles(50), seed=1)
    assert (responses >= 0).all()
    assert not np.array_equal(responses, np.round(responses))


def test_same_seed_same_responses_other_seed_other_responses(simulator) -> None:
    batch = particles(200)
    first = simulator.simulate(batch, seed=5)
    assert np.array_equal(first, simulator.simulate(batch, seed=5))
    assert not np.array_equal(first, simulator.simulate(batch, seed=6))


def test_chunked_generation_equals_one_shot(simulator: LearnedSimulator) -> None:
    batch = particles(2 * RANDOM_BLOCK + 300)
    whole = simulator.simulate(batch, seed=9)
    pieces = [
        simulator.simulate(batch[start : start + RANDOM_BLOCK], seed=9, first_index=start)
        for start in range(0, len(batch), RANDOM_BLOCK)
    ]
    assert np.array_equal(whole, np.concatenate(pieces))
    # a block's responses do not depend on which other particles share the call
    tail = simulator.simulate(batch[RANDOM_BLOCK:], seed=9, first_index=RANDOM_BLOCK)
    assert np.array_equal(whole[RANDOM_BLOCK:], tail)


def test_generation_leaves_the_training_mode_alone(simulator: LearnedSimulator) -> None:
    simulator.model.train()
    simulator.simulate(particles(10), seed=0)
    assert simulator.model.training
    simulator.model.eval()
    simulator.simulate(particles(10), seed=0)
    assert not simulator.model.training


def test_zero_particles_and_bad_devices(simulator: LearnedSimulator) -> None:
    assert simulator.simulate(np.zeros((0, 9)), seed=0).shape == (0, 44, 44)
    with pytest.raises(CalosimError, match="unknown device 'gpu0'"):
        LearnedSimulator(simulator.model, simulator.standardiser, model_name="x", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(CalosimError, match="CUDA is not available"):
            LearnedSimulator(simulator.model, simulator.standardiser, model_name="x", device="cuda")


def test_describe_names_the_model(simulator: LearnedSimulator) -> None:
    info = simulator.describe()
    assert info["simulator"] == "e2e_sae"
    assert info["noise_shape"] == [10]
    assert info["parameters"] == sum(p.numel() for p in simulator.model.parameters())


def test_stochastic_rounding_gives_integers_with_the_model_expectation(simulator) -> None:
    batch = particles(2 * RANDOM_BLOCK)
    simulator.round_counts = False
    exact = simulator.simulate(batch, seed=3)
    simulator.round_counts = True
    simulator.rounding = "stochastic"
    rounded = simulator.simulate(batch, seed=3)
    assert np.array_equal(rounded, np.round(rounded)) and (rounded >= 0).all()
    assert (np.abs(rounded - exact) < 1).all()
    # floor(x + u) is x on average: summed over ~4 million pixels the error cancels
    assert rounded.sum() == pytest.approx(exact.sum(), rel=1e-3)
    assert not np.isclose(np.round(exact).sum(), exact.sum(), rtol=1e-3)
    assert np.array_equal(rounded, simulator.simulate(batch, seed=3))
    tail = simulator.simulate(batch[RANDOM_BLOCK:], seed=3, first_index=RANDOM_BLOCK)
    assert np.array_equal(rounded[RANDOM_BLOCK:], tail)


def test_unknown_rounding_is_refused(simulator: LearnedSimulator) -> None:
    with pytest.raises(CalosimError, match="unknown rounding 'up'"):
        LearnedSimulator(simulator.model, simulator.standardiser, model_name="x", rounding="up")
