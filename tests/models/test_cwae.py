"""The conditional WAE-MMD baseline: config, shapes, determinism, learning, model files."""

from __future__ import annotations

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
from calosim.models.cwae import ConditionalWAE, CWAEConfig

TINY_CWAE = {"latent_dim": 4, "encoder_hidden": [32], "decoder_hidden": [16, 32]}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def test_registered_as_cwae_with_its_config() -> None:
    assert "cwae" in available_models()
    assert model_classes("cwae") == (CWAEConfig, ConditionalWAE)
    assert build_model("cwae").noise_shape == (10,)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mmd_weight": -0.1}, "mmd_weight must not be negative"),
        ({"mmd_scales": [1.0, 0.0]}, "mmd_scales must be positive"),
        ({"mmd_scales": []}, "mmd_scales must be positive"),
        ({"laplacian_weight": -1}, "laplacian_weight must not be negative"),
        ({"channel_scale": 0}, "channel_scale must be positive"),
        ({"channel_loss": "l2"}, "model.channel_loss: expected one of 'l1', 'log_mse'"),
        ({"encoder": "resnet"}, "model.encoder: expected one of 'mlp', 'conv'"),
    ],
)
def test_bad_configs_raise_one_line(values: dict, message: str) -> None:
    with pytest.raises(CalosimError, match=message) as raised:
        build_model("cwae", values)
    assert "\n" not in str(raised.value)


def test_shapes_and_losses(synthetic_batch) -> None:
    model = seeded_model("cwae", TINY_CWAE)
    images, conditions = synthetic_batch
    assert model.noise_shape == (4,)
    assert model.encode(images, conditions).shape == (64, 4)
    assert model.generate(torch.randn(64, 4), conditions).shape == (64, 44, 44)
    losses = model.training_losses(make_batch(images, conditions))
    assert set(losses) == {"loss", "mse", "laplacian", "channels", "mmd"}
    assert all(value.shape == () and torch.isfinite(value) for value in losses.values())
    c = model.config
    expected = weighted_reconstruction(losses, c) + c.mmd_weight * losses["mmd"].item()
    assert losses["channels"] > 0
    assert losses["loss"].item() == pytest.approx(expected)


def test_encoder_and_decoder_both_see_the_condition(synthetic_batch) -> None:
    model = seeded_model("cwae", TINY_CWAE)
    images, conditions = synthetic_batch
    assert not torch.equal(model.encode(images, conditions), model.encode(images, conditions + 1))
    assert_generation_depends_on_conditions(model, conditions)


def test_encoder_is_deterministic_and_prior_noise_comes_from_the_batch(synthetic_batch) -> None:
    model = seeded_model("cwae", TINY_CWAE)
    images, conditions = synthetic_batch
    assert torch.equal(model.encode(images, conditions), model.encode(images, conditions))
    first = model.training_losses(make_batch(*synthetic_batch, seed=5))
    second = model.training_losses(make_batch(*synthetic_batch, seed=5))
    third = model.training_losses(make_batch(*synthetic_batch, seed=6))
    assert first["mmd"] == second["mmd"] and first["mmd"] != third["mmd"]
    assert first["mse"] == third["mse"]  # no sampling inside the autoencoder


def test_same_seed_same_generation(synthetic_batch) -> None:
    assert_generation_is_deterministic("cwae", TINY_CWAE, synthetic_batch[1])


def test_one_training_step_decreases_the_loss(synthetic_batch) -> None:
    assert_one_step_decreases_the_loss(seeded_model("cwae", TINY_CWAE), *synthetic_batch)


def test_mmd_pulls_the_codes_towards_the_prior(synthetic_batch) -> None:
    # without reconstruction the encoder only answers to the MMD: its codes must approach
    # N(0, I) in MMD, measured against prior samples it never trained on
    model = seeded_model("cwae", {**TINY_CWAE, "reconstruction_weight": 0.0, "mmd_weight": 1.0})
    images, conditions = synthetic_batch
    with torch.no_grad():  # start far from the prior
        model.encoder.last_linear.bias.fill_(3.0)
    held_out_prior = torch.randn(64, 4, generator=torch.Generator().manual_seed(99))

    def distance() -> float:
        from calosim.nn.losses import mmd_inverse_multiquadric

        with torch.no_grad():
            return mmd_inverse_multiquadric(model.encode(images, conditions), held_out_prior).item()

    before = distance()
    optimisers = model.configure_optimisers(1e-2, 0.0)
    for seed in range(15):
        model.training_step(make_batch(images, conditions, seed=seed), optimisers)
    assert distance() < 0.25 * before


def test_save_load_generates_identically(tmp_path) -> None:
    assert_save_load_generates_identically(tmp_path, "cwae", TINY_CWAE, "decoder")
