"""The conditional pixel-space DDPM: config, noise, determinism, learning, model files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from baseline_helpers import make_batch, one_torch_thread, raw_particles, seeded_model

from calosim.data.transforms import ParticleStandardiser
from calosim.diffusion import AncestralSampler, DDIMSampler
from calosim.errors import CalosimError
from calosim.models import LearnedSimulator, available_models, build_model
from calosim.models.ddpm import ConditionalDDPM
from calosim.training.checkpoint import load_simulator, save_model_file

TINY_DDPM = {"channels": [8, 16], "attention": [False, False], "heads": 2,
             "diffusion_steps": 40, "sampling_steps": 4}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def lively(model: ConditionalDDPM) -> ConditionalDDPM:
    """A fresh model predicts exactly 0 (zero output layer); random output weights make
    its output depend on x_t, the step and the particle, as a trained one would."""
    with torch.no_grad():
        model.network.unet.head[-1].weight.normal_(0.0, 0.05)
    return model.eval()


def test_registered_with_padded_noise_and_configured_sampler() -> None:
    assert "ddpm" in available_models()
    model = build_model("ddpm", TINY_DDPM)
    assert model.noise_shape == (1, 48, 48)
    assert isinstance(model.sampler, DDIMSampler) and model.sampler.steps == 4
    ancestral = build_model("ddpm", {**TINY_DDPM, "sampler": "ancestral"})
    assert isinstance(ancestral.sampler, AncestralSampler)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"channels": [8] * 6, "attention": [False] * 6}, "do not fit 48 x 48"),
        ({"attention": [True]}, "one flag per level"),
        ({"heads": 3, "attention": [False, True]}, "heads .3. must divide"),
        ({"log_max": 0}, "log_max must be positive"),
        ({"guidance_scale": 2.0}, "needs condition_dropout"),
        ({"prediction": "x0"}, "expected one of"),
    ],
)
def test_bad_configs_raise_one_line(values: dict, message: str) -> None:
    with pytest.raises(CalosimError, match=message) as raised:
        build_model("ddpm", {**TINY_DDPM, **values})
    assert "\n" not in str(raised.value)


def test_image_space_round_trip(synthetic_batch) -> None:
    images, _ = synthetic_batch
    model = build_model("ddpm", TINY_DDPM)
    x = model.to_model_space(images)
    assert x.shape == (64, 1, 48, 48)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x[:, :, :2], torch.full_like(x[:, :, :2], -1.0))  # empty padding
    assert torch.allclose(model.from_model_space(x), images, atol=1e-5)


def test_a_tiny_model_overfits_one_batch(synthetic_batch) -> None:
    """Same images, steps and noise every time: the loss must fall far below its start."""
    images, conditions = synthetic_batch
    model = seeded_model("ddpm", TINY_DDPM)
    (optimiser,) = model.configure_optimisers(5e-3, 0.0)
    losses = [model.training_step(make_batch(images[:4], conditions[:4], seed=3), [optimiser])
              for _ in range(30)]
    assert losses[0]["loss"] == pytest.approx(1.0, abs=0.1)  # zero output vs unit noise
    assert losses[-1]["loss"] < 0.3 * losses[0]["loss"]


@pytest.mark.parametrize("sampler", [{"eta": 1.0}, {"sampler": "ancestral"}],
                         ids=["ddim-eta1", "ancestral"])
def test_stochastic_generation_is_a_function_of_each_rows_noise(sampler: dict) -> None:
    model = lively(seeded_model("ddpm", {**TINY_DDPM, **sampler, "diffusion_steps": 8}))
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(6, *model.noise_shape, generator=generator)
    conditions = torch.randn(6, 9, generator=generator)
    with torch.inference_mode():
        full = model.generate(noise, conditions)
        again = model.generate(noise, conditions)
        part = model.generate(noise[2:5], conditions[2:5])
        other = model.generate(noise, conditions + 1.0)
    assert full.shape == (6, 44, 44) and (full >= 0).all()
    assert torch.equal(full, again)
    assert torch.allclose(part, full[2:5], atol=1e-5)
    assert not torch.allclose(other, full)


def test_classifier_free_guidance_changes_the_output() -> None:
    config = {**TINY_DDPM, "condition_dropout": 0.2}
    plain = lively(seeded_model("ddpm", config))
    guided = lively(seeded_model("ddpm", {**config, "guidance_scale": 2.0}))
    with torch.no_grad():
        for model in (plain, guided):
            model.network.condition_embedding.null.fill_(1.0)
    noise = torch.randn(3, 1, 48, 48, generator=torch.Generator().manual_seed(2))
    conditions = torch.randn(3, 9, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert not torch.allclose(plain.generate(noise, conditions),
                                  guided.generate(noise, conditions))


def test_condition_dropout_draws_null_rows_from_the_batch_generator(synthetic_batch) -> None:
    images, conditions = synthetic_batch
    model = build_model("ddpm", {**TINY_DDPM, "condition_dropout": 0.5})
    drop = model.condition_drop(make_batch(images, conditions, seed=4))
    assert drop is not None and 10 < int(drop.sum()) < 54
    assert build_model("ddpm", TINY_DDPM).condition_drop(make_batch(images, conditions)) is None


def test_save_load_generates_identically(tmp_path: Path) -> None:
    model = lively(seeded_model("ddpm", {**TINY_DDPM, "eta": 0.5}))
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(100)),
                                 model_name="ddpm")
    loaded = load_simulator(save_model_file(tmp_path / "ddpm.pt", simulator, seed=1))
    particles = raw_particles(12, seed=2)
    original = simulator.simulate(particles, seed=5)
    assert original.sum() > 0
    assert loaded.model.config == model.config
    assert np.array_equal(loaded.simulate(particles, seed=5), original)
    assert not np.array_equal(loaded.simulate(particles, seed=6), original)


def test_sampling_settings_of_a_trained_model_can_change(tmp_path: Path) -> None:
    model = lively(seeded_model("ddpm", TINY_DDPM))
    model.set_sampling(sampler="ancestral", sampling_steps=2)
    assert isinstance(model.sampler, AncestralSampler) and model.config.sampling_steps == 2
    assert model.sampler.clip == (-1.0, 1.0)
    with pytest.raises(ValueError, match="channels is not a sampling setting"):
        model.set_sampling(channels=(4, 8))
    with pytest.raises(ValueError, match="sampling_steps must be at least 1"):
        model.set_sampling(sampler="ddim", sampling_steps=0)
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(100)),
                                 model_name="ddpm")
    loaded = load_simulator(save_model_file(tmp_path / "ddpm.pt", simulator, seed=1))
    assert isinstance(loaded.model.sampler, AncestralSampler)
