"""DAED: switch point from beta_1 / log SNR, the split training and generation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from baseline_helpers import make_batch, one_torch_thread, raw_particles, seeded_model

from calosim.data.transforms import ParticleStandardiser
from calosim.diffusion import NoiseSchedule
from calosim.errors import CalosimError
from calosim.models import LearnedSimulator, build_model
from calosim.models.daed import DAED
from calosim.training.checkpoint import load_simulator, save_model_file

TINY_DAED = {"channels": [8, 16], "attention": [False, False], "heads": 2,
             "dae_channels": [8, 16], "dae_attention": [False, False],
             "diffusion_steps": 100, "schedule": "linear", "sampling_steps": 5,
             "switch_beta": 0.1}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def test_switch_step_is_where_the_noise_reaches_beta_1() -> None:
    """q(x_s | x_0) has noise variance 1 - alpha_bar_s <= beta_1 < 1 - alpha_bar_{s+1}."""
    model = build_model("daed", TINY_DAED)
    schedule = NoiseSchedule.linear(100)
    s = model.switch_step
    assert 1 - schedule.alphas_cumprod[s] <= 0.1 < 1 - schedule.alphas_cumprod[s + 1]
    assert model.training_range() == (s + 1, 100)
    # the thesis' example: beta_1 = 0.1 on a 4000-step cosine schedule -> step 793 from 0
    thesis = build_model("daed", {**TINY_DAED, "schedule": "cosine", "diffusion_steps": 4000})
    assert thesis.switch_step == 794


def test_switch_from_log_snr_matches_the_equivalent_beta_1() -> None:
    log_snr = float(np.log(0.9 / 0.1))
    by_snr = build_model("daed", {**TINY_DAED, "switch_beta": None, "switch_log_snr": log_snr})
    assert by_snr.switch_step == build_model("daed", TINY_DAED).switch_step


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"switch_log_snr": 1.0}, "exactly one of switch_beta and switch_log_snr"),
        ({"switch_beta": 1.5}, "switch_beta must lie in"),
        ({"switch_beta": 0.999999}, "leaves none of the 100 diffusion steps"),
        ({"dae_channels": [8, 16, 16]}, "dae_attention needs one flag per level"),
    ],
)
def test_bad_configs_raise_one_line(values: dict, message: str) -> None:
    with pytest.raises(CalosimError, match=message) as raised:
        build_model("daed", {**TINY_DAED, **values})
    assert "\n" not in str(raised.value)


def test_training_uses_only_generator_steps_and_trains_both_parts(synthetic_batch) -> None:
    images, conditions = synthetic_batch
    model = seeded_model("daed", TINY_DAED)
    steps_seen: list[torch.Tensor] = []
    original = model.network.embed

    def spy(steps, *args, **kwargs):
        steps_seen.append(steps)
        return original(steps, *args, **kwargs)

    model.network.embed = spy  # type: ignore[method-assign]
    losses = model.training_losses(make_batch(images[:8], conditions[:8]))
    assert set(losses) == {"loss", "diffusion", "dae"}
    assert int(torch.cat(steps_seen).min()) > model.switch_step
    losses["loss"].backward()
    assert model.network.unet.head[-1].weight.grad.abs().sum() > 0
    assert model.denoiser.unet.head[-1].weight.grad.abs().sum() > 0


def test_the_denoising_autoencoder_learns_to_remove_the_noise(synthetic_batch) -> None:
    images, conditions = synthetic_batch
    model = seeded_model("daed", TINY_DAED)
    (optimiser,) = model.configure_optimisers(1e-2, 0.0)
    dae = [model.training_step(make_batch(images[:4], conditions[:4], seed=2), [optimiser])["dae"]
           for _ in range(15)]
    assert dae[-1] < 0.3 * dae[0]


def test_generation_runs_the_generator_down_to_the_switch_then_the_dae() -> None:
    model: DAED = seeded_model("daed", {**TINY_DAED, "eta": 1.0}).eval()
    visited: list[int] = []
    handed_over: list[torch.Tensor] = []
    network_output, denoise = model.network_output, model.denoise

    def record_step(x, t, conditions):
        visited.append(t)
        return network_output(x, t, conditions)

    def record_switch(x, conditions):
        handed_over.append(x)
        return denoise(x, conditions)

    model.network_output = record_step  # type: ignore[method-assign]
    model.denoise = record_switch  # type: ignore[method-assign]
    noise = torch.randn(3, *model.noise_shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        images = model.generate(noise, torch.zeros(3, 9))
    assert images.shape == (3, 44, 44)
    assert visited[0] == 100 and min(visited) > model.switch_step and len(visited) == 5
    assert len(handed_over) == 1 and handed_over[0].shape == (3, 1, 48, 48)


def test_save_load_generates_identically(tmp_path: Path) -> None:
    model = seeded_model("daed", TINY_DAED).eval()
    with torch.no_grad():  # a fresh DAE outputs 0 (mid-range); give it some texture
        model.denoiser.unet.head[-1].weight.normal_(0.0, 0.05)
    simulator = LearnedSimulator(model, ParticleStandardiser.fit(raw_particles(100)),
                                 model_name="daed")
    loaded = load_simulator(save_model_file(tmp_path / "daed.pt", simulator, seed=1))
    particles = raw_particles(10, seed=2)
    original = simulator.simulate(particles, seed=5)
    assert original.sum() > 0
    assert loaded.model.switch_step == model.switch_step
    assert np.array_equal(loaded.simulate(particles, seed=5), original)
    assert not np.array_equal(loaded.simulate(particles, seed=6), original)
