"""The Multiband VAE: bit frequencies, routing, controlled forgetting, phases, model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import calosim
from calosim.continual.strategies.multiband import (
    ForgettingPool,
    MultibandOptions,
    controlled_forgetting,
    phase_epochs,
    substitute_forgotten,
    temperature_at,
)
from calosim.data.transforms import ALICE_DEPLOYED
from calosim.errors import CalosimError
from calosim.models import LearnedSimulator, build_model
from calosim.models.base import Batch
from calosim.models.multiband_vae import MultibandVAE, relaxed_bits
from calosim.training.checkpoint import save_model_file

SMALL = {"latent_dim": 3, "n_bits": 4, "global_dim": 8, "max_tasks": 4,
         "encoder_hidden": [16], "decoder_hidden": [8, 16], "translator_hidden": [8],
         "code_hidden": [4], "code_features": 4}


def _model(**changes: object) -> MultibandVAE:
    torch.manual_seed(0)
    return build_model("multiband_vae", {**SMALL, **changes})  # type: ignore[return-value]


def test_binary_codes_follow_the_recorded_bit_frequencies() -> None:
    model = _model()
    frequencies = torch.tensor([0.05, 0.5, 0.9, 0.0])
    model.record_task(2, frequencies, (-1.0, 0.0))
    noise = torch.randn(40_000, *model.noise_shape, generator=torch.Generator().manual_seed(1))
    _, bits = model.sample_local(noise, torch.full((40_000,), 2))
    assert set(bits.unique().tolist()) <= {0.0, 1.0}
    # binomial standard error at n = 40 000 is at most 0.0025
    assert torch.allclose(bits.mean(dim=0), frequencies, atol=0.01)
    _, untouched = model.sample_local(noise, torch.zeros(40_000, dtype=torch.long))
    assert torch.allclose(untouched.mean(dim=0), torch.full((4,), 0.5), atol=0.01)
    assert int(model.n_tasks_seen) == 3


def test_energy_routing_picks_the_band_of_the_particle_energy() -> None:
    model = _model()
    for task, energy_range in enumerate([(-1.0, 0.0), (0.0, 1.0), (1.0, 3.0)]):
        model.record_task(task, torch.full((4,), 0.5), energy_range)
    conditions = torch.zeros(5, 9)
    conditions[:, 0] = torch.tensor([-5.0, -0.5, 0.5, 2.0, 9.0])
    tasks = model.route(conditions, torch.rand(5))
    assert tasks.tolist() == [0, 0, 1, 2, 2]
    uniform = _model(task_routing="uniform")
    uniform.n_tasks_seen.fill_(3)
    chosen = uniform.route(torch.zeros(3, 9), torch.tensor([0.1, 0.5, 0.99]))
    assert chosen.tolist() == [0, 1, 2]


def test_controlled_forgetting_marks_exactly_the_pairs_at_or_above_gamma() -> None:
    pool_codes = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    cosines = torch.tensor([0.95, 0.85, 0.9001, 0.3])  # to the first pool code
    replay = 3.0 * torch.stack([cosines, (1 - cosines**2).sqrt(), torch.zeros(4)], dim=1)
    # best similarities: 0.95 (code 0), 0.85 (code 0), 0.9001 (code 0), 0.954 (code 1)
    forget, nearest = controlled_forgetting(replay, pool_codes, 0.9)
    assert forget.tolist() == [True, False, True, True]
    assert nearest.tolist() == [0, 0, 0, 1]
    assert controlled_forgetting(replay, pool_codes, 0.952)[0].tolist() == [False] * 3 + [True]
    assert controlled_forgetting(replay, pool_codes, 0.8)[0].all()
    assert not controlled_forgetting(replay, pool_codes, 1.01)[0].any()


def test_substitution_replaces_targets_and_particles_of_forgotten_rows_only() -> None:
    images = torch.stack([torch.full((44, 44), 7.0), torch.full((44, 44), 9.0)])
    pool = ForgettingPool(codes=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), images=images,
                          conditions=torch.tensor([[7.0] * 9, [9.0] * 9]))
    codes = torch.tensor([[0.1, 1.0], [1.0, 1.0], [2.0, 0.1]])  # cos to best: .995, .707, .999
    targets, conditions = torch.zeros(3, 44, 44), torch.zeros(3, 9)
    new_targets, new_conditions, forgotten = substitute_forgotten(codes, targets, conditions,
                                                                  pool, gamma=0.9)
    assert forgotten.tolist() == [True, False, True]
    assert torch.all(new_targets[0] == 9.0) and torch.all(new_conditions[0] == 9.0)
    assert torch.all(new_targets[1] == 0.0) and torch.all(new_conditions[1] == 0.0)
    assert torch.all(new_targets[2] == 7.0) and torch.all(new_conditions[2] == 7.0)


def test_phases_share_the_epoch_budget_and_the_temperature_anneals() -> None:
    options = MultibandOptions()
    assert phase_epochs(12, 0, options) == (12, 0, 0)
    local, translator, joint = phase_epochs(12, 3, options)
    assert (local, translator, joint) == (4, 1, 7) and local + translator + joint == 12
    assert all(n >= 1 for n in phase_epochs(2, 1, options))
    temperatures = [temperature_at(e, 5, options) for e in range(5)]
    assert temperatures[0] == pytest.approx(1.0) and temperatures[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(temperatures, temperatures[1:], strict=False))
    with pytest.raises(ValueError, match="temperature"):
        MultibandOptions(temperature_start=0.5, temperature_end=1.0)


def test_relaxed_bits_harden_as_the_temperature_falls() -> None:
    logits = torch.tensor([[-2.0, 0.5, 3.0]]).expand(2000, 3)
    uniform = torch.rand(2000, 3, generator=torch.Generator().manual_seed(0))
    warm, cold = relaxed_bits(logits, uniform, 2.0), relaxed_bits(logits, uniform, 0.05)
    distance = lambda b: (b - b.round()).abs().mean()  # noqa: E731
    assert distance(cold) < 0.05 < distance(warm)
    # the hard limit is a Bernoulli draw with probability sigmoid(logit)
    assert torch.allclose(cold.round().mean(dim=0), torch.sigmoid(logits[0]), atol=0.04)


def test_local_losses_train_the_band_of_the_current_task() -> None:
    model = _model()
    images = torch.rand(16, 44, 44)
    batch = Batch(images, torch.randn(16, 9), torch.Generator().manual_seed(0))
    losses, probabilities = model.local_losses(batch, torch.full((16,), 1))
    assert set(losses) >= {"loss", "mse", "laplacian", "kl", "bit_kl"}
    assert probabilities.shape == (16, 4) and not probabilities.requires_grad
    losses["loss"].backward()
    task_layer = model.translator.task_features[0].weight
    assert task_layer.grad[:, 1].abs().sum() > 0 and task_layer.grad[:, 0].abs().sum() == 0
    with pytest.raises(CalosimError, match="unknown key model.bits"):
        build_model("multiband_vae", {"bits": 3})


def test_model_file_loads_and_generates_like_the_trained_model(tmp_path) -> None:
    model = _model()
    model.record_task(0, torch.tensor([0.2, 0.4, 0.6, 0.8]), (-2.0, 0.0))
    model.record_task(1, torch.tensor([0.9, 0.1, 0.9, 0.1]), (0.0, 5.0))
    simulator = LearnedSimulator(model, ALICE_DEPLOYED, model_name="multiband_vae")
    path = save_model_file(tmp_path / "model.pt", simulator, seed=3)
    particles = np.zeros((50, 9), dtype=np.float32)
    particles[:, 0] = np.linspace(50.0, 6000.0, 50)
    loaded = calosim.load(path)
    assert np.array_equal(loaded.simulate(particles, seed=5), simulator.simulate(particles, seed=5))
    assert torch.equal(loaded.model.bit_frequencies, model.bit_frequencies)
    assert int(loaded.model.n_tasks_seen) == 2


def test_local_model_is_the_model_at_task_one_then_a_copy_or_a_fresh_one() -> None:
    from calosim.continual.strategies.base import StrategyContext, TaskData
    from calosim.continual.strategies.multiband import MultibandStrategy

    def task(index: int) -> TaskData:
        return TaskData(index, "t", torch.zeros(2, 44, 44), torch.zeros(2, 9), (0.0, 1.0))

    for init in ("copy", "fresh"):
        strategy = MultibandStrategy(_model(), MultibandOptions(local_init=init),
                                     StrategyContext(ALICE_DEPLOYED))
        assert strategy.local_model(task(0)) is strategy.model
        local = strategy.local_model(task(1))
        assert local is not strategy.model
        first = next(local.parameters())
        same = torch.equal(first, next(strategy.model.parameters()))
        assert same == (init == "copy")
        assert first.data_ptr() != next(strategy.model.parameters()).data_ptr()
