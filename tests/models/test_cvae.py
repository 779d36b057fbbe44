"""The conditional VAE baseline: config, shapes, determinism, learning, model files."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch
from baseline_helpers import (
    assert_generation_depends_on_conditions,
    assert_generation_is_deterministic,
    assert_one_step_decreases_the_loss,
    assert_save_load_generates_identically,
    make_batch,
    one_torch_thread,
    seeded_model,
    weighted_reconstruction,
)

from calosim.errors import CalosimError
from calosim.models import available_models, build_model, model_classes
from calosim.models.cvae import ConditionalVAE, CVAEConfig, gaussian_kl_to_standard_normal

TINY_CVAE = {"latent_dim": 4, "encoder_hidden": [32], "decoder_hidden": [16, 32]}
TINY_CONV = {**TINY_CVAE, "encoder": "conv", "encoder_hidden": [16, 8], "encoder_channels": [4, 8],
             "decoder": "conv", "decoder_channels": [4, 2]}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def test_registered_as_cvae_with_its_config() -> None:
    assert "cvae" in available_models()
    assert model_classes("cvae") == (CVAEConfig, ConditionalVAE)
    assert build_model("cvae").noise_shape == (10,)  # ALICE's noise size by default


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kl_weight": -1.0}, "kl_weight must not be negative"),
        ({"latent_dim": 0}, "latent_dim must be at least 1"),
        ({"decoder": "conv", "decoder_channels": [4, 4, 4]}, "needs 1 or 2 decoder_channels"),
        ({"encoder": "conv", "encoder_channels": []}, "a conv encoder needs encoder_channels"),
        ({"beta": 2}, "unknown key model.beta"),
    ],
)
def test_bad_configs_raise_one_line(values: dict, message: str) -> None:
    with pytest.raises(CalosimError, match=message) as raised:
        build_model("cvae", values)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("config", [TINY_CVAE, TINY_CONV], ids=["mlp", "conv"])
def test_shapes_and_losses(config: dict, synthetic_batch) -> None:
    model = seeded_model("cvae", config)
    images, conditions = synthetic_batch
    assert model.noise_shape == (4,)
    mean, log_variance = model.posterior(images, conditions)
    assert mean.shape == log_variance.shape == (64, 4)
    assert model.generate(torch.randn(64, 4), conditions).shape == (64, 44, 44)
    losses = model.training_losses(make_batch(images, conditions))
    assert set(losses) == {"loss", "mse", "laplacian", "channels", "kl"}
    assert all(value.shape == () and torch.isfinite(value) for value in losses.values())
    c = model.config
    expected = weighted_reconstruction(losses, c) + c.kl_weight * losses["kl"].item()
    assert losses["channels"] > 0
    assert losses["loss"].item() == pytest.approx(expected)


def test_kl_to_standard_normal_closed_form() -> None:
    zeros = torch.zeros(5, 3)
    assert gaussian_kl_to_standard_normal(zeros, zeros).item() == 0.0
    # mean 1, variance 1: 1/2 per dimension; variance e^2: (e^2 - 1 - 2) / 2 per dimension
    assert gaussian_kl_to_standard_normal(torch.ones(5, 3), zeros).item() == pytest.approx(1.5)
    two = torch.full((5, 3), 2.0)
    expected = 3 * 0.5 * (torch.e**2 - 3.0)
    assert gaussian_kl_to_standard_normal(zeros, two).item() == pytest.approx(expected, rel=1e-5)


def test_encoder_and_decoder_both_see_the_condition(synthetic_batch) -> None:
    model = seeded_model("cvae", TINY_CVAE)
    images, conditions = synthetic_batch
    mean, _ = model.posterior(images, conditions)
    shifted_mean, _ = model.posterior(images, conditions + 1.0)
    assert not torch.equal(mean, shifted_mean)
    assert_generation_depends_on_conditions(model, conditions)


def test_same_seed_same_generation(synthetic_batch) -> None:
    assert_generation_is_deterministic("cvae", TINY_CVAE, synthetic_batch[1])


def test_training_noise_comes_from_the_batch_generator(synthetic_batch) -> None:
    model = seeded_model("cvae", TINY_CVAE)
    first = model.training_losses(make_batch(*synthetic_batch, seed=5))["mse"]
    second = model.training_losses(make_batch(*synthetic_batch, seed=5))["mse"]
    third = model.training_losses(make_batch(*synthetic_batch, seed=6))["mse"]
    assert first == second and first != third


@pytest.mark.parametrize("config", [TINY_CVAE, TINY_CONV], ids=["mlp", "conv"])
def test_one_training_step_decreases_the_loss(config: dict, synthetic_batch) -> None:
    assert_one_step_decreases_the_loss(seeded_model("cvae", config), *synthetic_batch)


def test_kl_weight_pulls_the_posterior_towards_the_prior(synthetic_batch) -> None:
    model = seeded_model("cvae", {**TINY_CVAE, "kl_weight": 1.0})
    optimisers = model.configure_optimisers(3e-3, 0.0)
    before = model.training_losses(make_batch(*synthetic_batch))["kl"].item()
    for seed in range(20):
        model.training_step(make_batch(*synthetic_batch, seed=seed), optimisers)
    after = model.training_losses(make_batch(*synthetic_batch))["kl"].item()
    assert after < 0.5 * before


def test_only_the_reconstruction_trains_the_decoder(synthetic_batch) -> None:
    config = dataclasses.replace(seeded_model("cvae", TINY_CVAE).config, reconstruction_weight=0.0)
    model = ConditionalVAE(config)
    model.training_losses(make_batch(*synthetic_batch))["loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.decoder.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.encoder.parameters())


def test_save_load_generates_identically(tmp_path) -> None:
    assert_save_load_generates_identically(tmp_path, "cvae", TINY_CVAE, "decoder")
