"""The conditional GAN baseline: config, shapes, the two-player step, model files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from baseline_helpers import (
    assert_generation_depends_on_conditions,
    assert_generation_is_deterministic,
    assert_save_load_generates_identically,
    make_batch,
    one_torch_thread,
    seeded_model,
)

from calosim.errors import CalosimError
from calosim.models import available_models, build_model, model_classes
from calosim.models.cgan import CGANConfig, ConditionalGAN

TINY_CGAN = {"generator_hidden": [16, 32], "critic_hidden": [16, 8], "critic_channels": [4, 8],
             "critic_steps": 2}
TINY_DCGAN = {**TINY_CGAN, "loss": "bce", "critic_batch_norm": True}
TINY_MLP_CRITIC = {**TINY_CGAN, "critic": "mlp", "critic_hidden": [16]}
VARIANTS = [TINY_CGAN, TINY_DCGAN, TINY_MLP_CRITIC]
VARIANT_IDS = ["wgan_gp", "bce", "mlp_critic"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def parameters_of(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> list[bool]:
    return [not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True)]


def test_registered_as_cgan_with_its_config() -> None:
    assert "cgan" in available_models()
    assert model_classes("cgan") == (CGANConfig, ConditionalGAN)
    model = build_model("cgan")
    assert model.noise_shape == (10,)
    assert model.config.loss == "wgan_gp"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"critic_batch_norm": True}, "critic_batch_norm cannot be used with loss wgan_gp"),
        ({"loss": "hinge"}, "model.loss: expected one of 'wgan_gp', 'bce'"),
        ({"critic_steps": 0}, "critic_steps must be at least 1"),
        ({"adam_betas": [0.5]}, "adam_betas must be 2 numbers"),
        ({"critic_lr_ratio": 0}, "critic_lr_ratio must be positive"),
        ({"gradient_penalty": -1}, "gradient_penalty must not be negative"),
        ({"critic_channels": []}, "a conv critic needs critic_channels"),
    ],
)
def test_bad_configs_raise_one_line(values: dict, message: str) -> None:
    with pytest.raises(CalosimError, match=message) as raised:
        build_model("cgan", values)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("config", VARIANTS, ids=VARIANT_IDS)
def test_shapes_and_non_negative_output(config: dict, synthetic_batch) -> None:
    model = seeded_model("cgan", config)
    images, conditions = synthetic_batch
    generated = model.generate(torch.randn(64, 10), conditions)
    assert generated.shape == (64, 44, 44)
    assert (generated >= 0).all() and (generated == 0).any()
    assert model.score(images, conditions).shape == (64,)
    losses = model.training_losses(make_batch(images, conditions))
    assert all(value.shape == () and torch.isfinite(value) for value in losses.values())
    assert losses["loss"].item() == pytest.approx((losses["critic"] + losses["generator"]).item())


def test_generator_and_critic_see_the_condition(synthetic_batch) -> None:
    model = seeded_model("cgan", TINY_CGAN)
    images, conditions = synthetic_batch
    assert not torch.equal(model.score(images, conditions), model.score(images, conditions + 1))
    assert_generation_depends_on_conditions(model, conditions)


def test_same_seed_same_generation(synthetic_batch) -> None:
    assert_generation_is_deterministic("cgan", TINY_CGAN, synthetic_batch[1])


def test_each_optimiser_holds_exactly_its_players_parameters() -> None:
    model = seeded_model("cgan", {**TINY_CGAN, "critic_lr_ratio": 4.0})
    generator_optimiser, critic_optimiser = model.configure_optimisers(1e-3, 0.0)

    def held(optimiser: torch.optim.Optimizer) -> set[int]:
        return {id(p) for group in optimiser.param_groups for p in group["params"]}

    assert held(generator_optimiser) == {id(p) for p in model.generator.parameters()}
    assert held(critic_optimiser) == {id(p) for p in model.critic.parameters()}
    assert critic_optimiser.param_groups[0]["lr"] == pytest.approx(4e-3)


@pytest.mark.parametrize("config", VARIANTS, ids=VARIANT_IDS)
def test_step_updates_both_players_and_reports_finite_losses(config: dict, synthetic_batch):
    model = seeded_model("cgan", config)
    generator_before, critic_before = parameters_of(model.generator), parameters_of(model.critic)
    step = model.training_step(make_batch(*synthetic_batch), model.configure_optimisers(1e-3, 0))
    assert {"loss", "critic", "generator"} <= set(step)
    assert all(torch.isfinite(torch.tensor(value)) for value in step.values())
    assert all(changed(generator_before, model.generator))
    assert any(changed(critic_before, model.critic))
    assert all(p.requires_grad for p in model.parameters())  # the critic is unfrozen again


@pytest.mark.parametrize("frozen_player", ["generator", "critic"])
def test_each_optimiser_moves_only_its_own_player(frozen_player: str, synthetic_batch) -> None:
    model = seeded_model("cgan", TINY_CGAN)
    optimisers = model.configure_optimisers(1e-3, 0.0)
    still = 0 if frozen_player == "generator" else 1
    for group in optimisers[still].param_groups:
        group["lr"] = 0.0
    moving = "critic" if frozen_player == "generator" else "generator"
    frozen_before = parameters_of(getattr(model, frozen_player))
    moving_before = parameters_of(getattr(model, moving))
    model.training_step(make_batch(*synthetic_batch), optimisers, grad_clip=1.0)
    assert not any(changed(frozen_before, getattr(model, frozen_player)))
    assert any(changed(moving_before, getattr(model, moving)))


def test_critic_updates_widen_the_wasserstein_estimate(synthetic_batch) -> None:
    # with the generator held still the critic learns to tell real from generated: the
    # estimate E D(real) - E D(fake) must grow
    model = seeded_model("cgan", {**TINY_CGAN, "critic_steps": 1})
    optimisers = model.configure_optimisers(1e-2, 0.0)
    for group in optimisers[0].param_groups:
        group["lr"] = 0.0
    first = model.training_step(make_batch(*synthetic_batch, seed=0), optimisers)
    for seed in range(1, 10):
        last = model.training_step(make_batch(*synthetic_batch, seed=seed), optimisers)
    assert last["wasserstein"] > first["wasserstein"] + 0.5


def test_generator_update_lowers_its_loss_against_a_fixed_critic(synthetic_batch) -> None:
    model = seeded_model("cgan", TINY_CGAN)
    optimisers = model.configure_optimisers(1e-3, 0.0)
    for group in optimisers[1].param_groups:
        group["lr"] = 0.0
    _, conditions = synthetic_batch
    before = model.generator_loss(conditions, make_batch(*synthetic_batch, seed=3)).item()
    for _ in range(3):
        model.training_step(make_batch(*synthetic_batch, seed=3), optimisers)
    after = model.generator_loss(conditions, make_batch(*synthetic_batch, seed=3)).item()
    assert after < before


def test_gradient_penalty_vanishes_for_a_unit_slope_critic(synthetic_batch) -> None:
    # a critic linear in the image with a unit-norm weight has |grad D| = 1 everywhere
    images, conditions = synthetic_batch
    model = seeded_model("cgan", {**TINY_CGAN, "critic": "mlp", "critic_hidden": []})
    layer = model.critic.last_linear
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, : 44 * 44] = 1.0 / 44.0
    fake = model.generate(torch.randn(64, 10), conditions).detach()
    penalty = model.gradient_penalty(images, fake, conditions, make_batch(*synthetic_batch))
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        layer.weight.mul_(3.0)  # slope 3: (3 - 1)^2
    penalty = model.gradient_penalty(images, fake, conditions, make_batch(*synthetic_batch))
    assert penalty.item() == pytest.approx(4.0, rel=1e-5)


def test_save_load_generates_identically(tmp_path) -> None:
    assert_save_load_generates_identically(tmp_path, "cgan", TINY_CGAN, "generator")
