"""The conditional e2e Sinkhorn autoencoder as a module: shapes, determinism, learning."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from calosim.data.transforms import counts_from_log
from calosim.errors import CalosimError
from calosim.metrics import channels
from calosim.models import Batch, available_models, build_model, model_classes
from calosim.models.sinkhorn_ae import SinkhornAEConfig, SinkhornAutoencoder
from calosim.nn.losses import channel_shape_divergence, energy_score


def make_batch(images: torch.Tensor, conditions: torch.Tensor, seed: int = 0) -> Batch:
    return Batch(images, conditions, torch.Generator().manual_seed(seed))


def test_registry_knows_the_sae_and_rejects_unknown_names() -> None:
    assert "e2e_sae" in available_models()
    assert model_classes("e2e_sae") == (SinkhornAEConfig, SinkhornAutoencoder)
    with pytest.raises(CalosimError, match="unknown model 'nope'.*e2e_sae"):
        build_model("nope", {})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"latent_dm": 3}, "unknown key model.latent_dm"),
        ({"latent_dim": "ten"}, "model.latent_dim: expected an integer"),
        ({"latent_dim": 2.5}, "model.latent_dim: expected an integer"),
        ({"gate": 1}, "model.gate: expected true or false"),
        ({"decoder": "transformer"}, "model.decoder: expected one of 'mlp', 'conv'"),
        ({"decoder": "channel_totals", "image_shape": [28, 28], "condition_dim": 0,
          "gate": False, "channel_weight": 0, "encoder_channel_inputs": False,
          "condition_weights": []}, "decoder: channel_totals predicts the 5 ZN channel sums"),
        ({"decoder_hidden": 64}, "model.decoder_hidden: expected a list"),
        ({"latent_dim": 0}, "latent_dim must be at least 1"),
        ({"sinkhorn_scaling": 1.5}, "sinkhorn_scaling must lie in"),
        ({"sinkhorn_weight": -1}, "sinkhorn_weight must not be negative"),
        ({"encoder": "conv"}, "encoder_channel_inputs needs encoder: mlp"),
        ({"condition_weights": [1, 2]}, "condition_weights must be empty or 9 numbers"),
        ({"refine_draws": 1}, "refine_draws must be at least 2"),
        ({"refine_steps": -1}, "refine_steps must not be negative"),
        ({"refine_ema_decay": 1.0}, "refine_ema_decay in"),
        ({"shape_loss": "photon_likelihood"}, "photon_likelihood needs decoder: channel_totals"),
        ({"shape_refit_steps": 10}, "shape_refit_steps needs decoder: channel_totals"),
        ({"shape_refit_steps": -1}, "shape_refit_steps must not be negative"),
        ({"totals_refit_steps": 10}, "totals_refit_steps needs decoder: channel_totals"),
        ({"totals_refit_steps": -1}, "totals_refit_steps must not be negative"),
    ],
)
def test_bad_model_configs_raise_one_line(values: dict, message: str) -> None:
    with pytest.raises(CalosimError, match=message) as raised:
        build_model("e2e_sae", values)
    assert "\n" not in str(raised.value)


def test_config_values_are_converted_to_declared_types() -> None:
    model = build_model("e2e_sae", {"sinkhorn_blur": 1, "decoder_hidden": [8, 16]})
    assert model.config.sinkhorn_blur == 1.0 and isinstance(model.config.sinkhorn_blur, float)
    assert model.config.decoder_hidden == (8, 16)


@pytest.mark.parametrize("architecture", [
    {"encoder": "mlp", "decoder": "mlp"},
    {"encoder": "mlp", "decoder": "channel_totals"},
    {"encoder": "conv", "encoder_channel_inputs": False, "encoder_channels": (4, 8),
     "decoder": "conv", "decoder_channels": (4, 2)},
])
def test_shapes(tiny_config: SinkhornAEConfig, synthetic_batch, architecture: dict) -> None:
    torch.manual_seed(0)
    model = SinkhornAutoencoder(dataclasses.replace(tiny_config, **architecture))
    images, conditions = synthetic_batch
    assert model.noise_shape == (10,)
    codes = model.encode(images)
    assert codes.shape == (64, 4)
    assert model.decode(codes).shape == (64, 44, 44)
    assert model.generate(torch.randn(64, 10), conditions).shape == (64, 44, 44)
    losses = model.training_losses(make_batch(images, conditions))
    parts = {"loss", "mse", "laplacian", "channels", "sinkhorn", "diversity", "encoder_l2"}
    assert parts <= set(losses)
    assert all(value.shape == () and torch.isfinite(value) for value in losses.values())


@pytest.mark.parametrize("decoder", ["mlp", "channel_totals"])
def test_counts_path_matches_the_log_space_generation(tiny_config, synthetic_batch, decoder):
    """generate_counts (what the simulator calls; channel_totals skips the log round trip)
    gives the counts of generate, gate included."""
    torch.manual_seed(0)
    model = SinkhornAutoencoder(dataclasses.replace(tiny_config, decoder=decoder, gate=True))
    model.eval()
    _, conditions = synthetic_batch
    noise = torch.randn(64, 11, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        counts = model.generate_counts(noise, conditions)
        expected = counts_from_log(model.generate(noise, conditions))
    assert torch.allclose(counts, expected, rtol=1e-4, atol=1e-4)
    empty = counts.flatten(1).amax(dim=1) <= 0
    assert 0 < int(empty.sum()) < 64


def test_same_seed_same_model_and_generation(tiny_config, synthetic_batch) -> None:
    _, conditions = synthetic_batch
    noise = torch.randn(64, 10, generator=torch.Generator().manual_seed(3))
    outputs = []
    for _ in range(2):
        torch.manual_seed(11)
        model = SinkhornAutoencoder(tiny_config).eval()
        outputs.append(model.generate(noise, conditions))
    assert torch.equal(outputs[0], outputs[1])
    other_noise = torch.randn(64, 10, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(outputs[0], model.generate(other_noise, conditions))


def test_training_losses_reproducible_from_the_batch_generator(tiny_config, synthetic_batch):
    torch.manual_seed(0)
    model = SinkhornAutoencoder(tiny_config)
    first = model.training_losses(make_batch(*synthetic_batch, seed=5))["sinkhorn"]
    second = model.training_losses(make_batch(*synthetic_batch, seed=5))["sinkhorn"]
    third = model.training_losses(make_batch(*synthetic_batch, seed=6))["sinkhorn"]
    assert first == second
    assert first != third


@pytest.mark.parametrize("architecture", [
    {},
    {"decoder": "channel_totals", "shape_loss": "photon_likelihood"},
])
def test_one_training_step_decreases_the_loss_on_a_fixed_batch(
    tiny_config, synthetic_batch, architecture: dict
) -> None:
    torch.manual_seed(0)
    model = SinkhornAutoencoder(dataclasses.replace(tiny_config, **architecture))
    (optimiser,) = model.configure_optimisers(1e-3, 0.0)
    before = model.training_losses(make_batch(*synthetic_batch, seed=1))["loss"].item()
    step = model.training_step(make_batch(*synthetic_batch, seed=1), [optimiser])
    after = model.training_losses(make_batch(*synthetic_batch, seed=1))["loss"].item()
    assert step["loss"] == pytest.approx(before)
    assert after < before


def test_sinkhorn_gradient_reaches_encoder_and_noise_generator_only_recon_reaches_decoder(
    tiny_config, synthetic_batch
) -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config, reconstruction_weight=0.0, encoder_l2=0.0)
    model = SinkhornAutoencoder(config)
    model.training_losses(make_batch(*synthetic_batch))["loss"].backward()
    grad_norm = {
        name: sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None)
        for name, part in [("encoder", model.encoder), ("decoder", model.decoder),
                           ("noise", model.noise_generator)]
    }
    assert grad_norm["encoder"] > 0 and grad_norm["noise"] > 0
    assert grad_norm["decoder"] == 0


def generator_score(model: SinkhornAutoencoder, images, conditions) -> float:
    """Energy score of 8 fixed-noise generator draws against the codes of ``images``."""
    with torch.no_grad():
        codes = model.encode(images)
        noise = torch.randn(8 * len(codes), model.config.noise_dim,
                            generator=torch.Generator().manual_seed(99))
        draws = model.sample_codes(noise, conditions.repeat(8, 1)).reshape(8, *codes.shape)
        return energy_score(draws, codes).item()


def test_refinement_fits_the_generator_to_the_codes_and_freezes_the_autoencoder(
    tiny_config, synthetic_batch
) -> None:
    torch.manual_seed(0)
    model = SinkhornAutoencoder(dataclasses.replace(tiny_config, refine_steps=150,
                                                    refine_batch_size=64))
    images, conditions = synthetic_batch
    autoencoder = {k: v.clone() for k, v in model.state_dict().items()
                   if not k.startswith("noise_generator")}
    before = generator_score(model, images, conditions)
    chunks = [make_batch(images[:40], conditions[:40]), make_batch(images[40:], conditions[40:])]
    losses = model.refine(chunks, torch.Generator().manual_seed(1))
    assert model.refines and set(losses) == {"loss"}
    assert generator_score(model, images, conditions) < before - 0.05
    assert all(torch.equal(model.state_dict()[k], v) for k, v in autoencoder.items())

    torch.manual_seed(0)
    again = SinkhornAutoencoder(dataclasses.replace(tiny_config, refine_steps=150,
                                                    refine_batch_size=64))
    again.refine(chunks, torch.Generator().manual_seed(1))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in again.state_dict().items())


def refit_model(tiny_config, **refits: int) -> tuple[SinkhornAutoencoder, dict]:
    """A channel-totals SAE set to refit its decoder, and a copy of every tensor of its
    state but the decoder's output layer (the only one a refit may change)."""
    torch.manual_seed(0)
    model = SinkhornAutoencoder(dataclasses.replace(
        tiny_config, decoder="channel_totals", refine_batch_size=32,
        refine_learning_rate=1e-2, **refits))
    last = model.decoder.mlp.last_linear
    refitted = {name for name, value in model.named_parameters()
                if value is last.weight or value is last.bias}
    assert len(refitted) == 2
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k not in refitted}
    return model, frozen


def test_shape_refit_moves_the_light_within_channels_and_nothing_else(
    tiny_config, synthetic_batch
) -> None:
    """With shape_refit_steps alone, only the decoder's pixel logits change: the channel
    sums of every decoded response stay, and the photons' divergence falls."""
    model, frozen = refit_model(tiny_config, shape_refit_steps=200)
    images, conditions = synthetic_batch
    last = model.decoder.mlp.last_linear
    totals_rows = (last.weight[-5:].clone(), last.bias[-5:].clone())
    with torch.no_grad():
        codes = model.encode(images)
        sums_before = channels(model.decode_counts(codes))
        shares_before, _ = model.decoder.shares_and_totals(codes)
    divergence_before = channel_shape_divergence(counts_from_log(images), shares_before,
                                                 model.decoder.mask)
    losses = model.refine([make_batch(images, conditions)], torch.Generator().manual_seed(1))
    assert model.refines and set(losses) == {"loss", "shape"}
    with torch.no_grad():
        assert torch.allclose(channels(model.decode_counts(codes)), sums_before, rtol=1e-4)
        shares_after, _ = model.decoder.shares_and_totals(codes)
    assert channel_shape_divergence(counts_from_log(images), shares_after,
                                    model.decoder.mask) < 0.5 * divergence_before
    assert torch.equal(last.weight[-5:], totals_rows[0])
    assert torch.equal(last.bias[-5:], totals_rows[1])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in frozen.items())


def test_totals_refit_fits_the_channel_sums_and_nothing_else(tiny_config, synthetic_batch):
    """With totals_refit_steps alone, only the decoder's 5 total rows change: the
    reconstructed channel sums move to the real ones (the L1 error of the reconstructions
    falls), the light's spread within the channels stays, and empty responses are left
    out (the gate's, as in every refit)."""
    model, frozen = refit_model(tiny_config, totals_refit_steps=300)
    images, conditions = synthetic_batch
    images = images.clone()
    images[:8] = 0.0  # empty responses: no code, no sums to fit
    last = model.decoder.mlp.last_linear
    pixel_rows = (last.weight[:-5].clone(), last.bias[:-5].clone())
    real = channels(counts_from_log(images[8:]))
    with torch.no_grad():
        codes = model.encode(images[8:])
        error_before = (channels(model.decode_counts(codes)) - real).abs().mean()
        shares_before, _ = model.decoder.shares_and_totals(codes)
    batches = [make_batch(images[:40], conditions[:40]), make_batch(images[40:], conditions[40:])]
    losses = model.refine(batches, torch.Generator().manual_seed(1))
    assert model.refines and set(losses) == {"loss", "totals"}
    with torch.no_grad():
        error_after = (channels(model.decode_counts(codes)) - real).abs().mean()
        shares_after, _ = model.decoder.shares_and_totals(codes)
    assert error_after < 0.5 * error_before
    assert losses["totals"] == pytest.approx(error_after.item() / 100.0, rel=0.05)
    assert torch.equal(shares_after, shares_before)
    assert torch.equal(last.weight[:-5], pixel_rows[0])
    assert torch.equal(last.bias[:-5], pixel_rows[1])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in frozen.items())


def test_no_refinement_by_default(tiny_config, synthetic_batch) -> None:
    model = SinkhornAutoencoder(tiny_config)
    assert not model.refines
    assert model.refine([make_batch(*synthetic_batch)], torch.Generator()) is None


def test_gate_zeroes_the_responses_it_predicts_empty(tiny_config, synthetic_batch) -> None:
    torch.manual_seed(0)
    model = SinkhornAutoencoder(dataclasses.replace(tiny_config, gate=True)).eval()
    _, conditions = synthetic_batch
    assert model.noise_shape == (11,)
    noise = torch.randn(64, 11, generator=torch.Generator().manual_seed(0))
    last_layer = model.gate.last_linear
    with torch.no_grad():
        last_layer.weight.zero_()
        last_layer.bias.fill_(20.0)  # P(empty) ~ 1
        assert model.generate(noise, conditions).abs().sum() == 0
        last_layer.bias.fill_(-20.0)  # P(empty) ~ 0
        images = model.generate(noise, conditions)
        assert (images.flatten(1).abs().sum(1) > 0).all()
        last_layer.bias.fill_(0.0)  # P(empty) = 1/2: about half of 64 are dropped
        empty = int((model.generate(noise, conditions).flatten(1).abs().sum(1) == 0).sum())
        assert 16 <= empty <= 48


def test_gate_learns_from_empty_responses_and_ae_skips_them(tiny_config, synthetic_batch):
    torch.manual_seed(0)
    model = SinkhornAutoencoder(dataclasses.replace(tiny_config, gate=True))
    images, conditions = synthetic_batch
    images = images.clone()
    images[conditions[:, 0] < 0] = 0.0  # "low energy": no photons
    losses = model.training_losses(make_batch(images, conditions))
    assert losses["gate"] > 0
    (optimiser,) = model.configure_optimisers(1e-2, 0.0)
    for seed in range(60):
        model.training_step(make_batch(images, conditions, seed), [optimiser])
    probability = model.empty_probability(conditions).detach()
    empty = conditions[:, 0] < 0
    assert probability[empty].mean() > 0.8 and probability[~empty].mean() < 0.2


def test_photon_likelihood_trains_the_shapes_by_the_divergence_and_the_sums_by_l1(
    tiny_config, synthetic_batch
) -> None:
    config = dataclasses.replace(tiny_config, decoder="channel_totals",
                                 shape_loss="photon_likelihood")
    torch.manual_seed(0)
    model = SinkhornAutoencoder(config)
    images, conditions = synthetic_batch
    losses = model.training_losses(make_batch(images, conditions))
    assert "mse" not in losses and "laplacian" not in losses
    kept = images[images.flatten(1).amax(dim=1) > 0]
    counts = counts_from_log(kept)
    log_shares, totals = model.decoder.shares_and_totals(model.encode(kept))
    assert torch.allclose(losses["shape"],
                          channel_shape_divergence(counts, log_shares, model.decoder.mask))
    assert torch.allclose(losses["channels"],
                          (totals - channels(counts)).abs().mean() / config.channel_scale)
