"""Noise schedules: shapes, the closed form q(x_t | x_0), switch points, step sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calosim.diffusion import NoiseSchedule


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_arrays_start_at_clean_data_and_decrease(kind: str) -> None:
    schedule = NoiseSchedule.build(kind, 1000)
    assert schedule.n_steps == 1000
    assert schedule.betas.shape == schedule.alphas_cumprod.shape == (1001,)
    assert schedule.betas[0] == 0 and schedule.alphas_cumprod[0] == 1
    assert np.all(np.diff(schedule.alphas_cumprod) < 0)
    assert np.all(np.diff(schedule.log_snr()[1:]) < 0)
    assert np.all((schedule.betas[1:] > 0) & (schedule.betas[1:] < 1))
    assert schedule.alphas_cumprod[-1] < 0.01


def test_linear_schedule_endpoints_and_cosine_formula() -> None:
    linear = NoiseSchedule.linear(1000, 1e-4, 0.02)
    assert linear.betas[1] == pytest.approx(1e-4) and linear.betas[-1] == pytest.approx(0.02)
    cosine = NoiseSchedule.cosine(1000, offset=0.008)
    t = 250
    f = np.cos((np.array([t / 1000, 0.0]) + 0.008) / 1.008 * np.pi / 2) ** 2
    assert cosine.alphas_cumprod[t] == pytest.approx(f[0] / f[1], rel=1e-9)
    assert cosine.betas.max() <= 0.999


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError):
        NoiseSchedule(np.array([0.1, 1.0]))
    with pytest.raises(ValueError):
        NoiseSchedule.build("quadratic", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NoiseSchedule.linear(0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_step_by_step_noising_matches_the_closed_form(kind: str) -> None:
    """Running q(x_t | x_{t-1}) t times gives the moments of q(x_t | x_0) (eq. 2.7), and
    q_sample draws have the same moments."""
    schedule = NoiseSchedule.build(kind, 60)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64)
    n = 20_000
    x = x0.expand(n, 3).clone()
    checkpoints = {3, 20, 60}
    for t in range(1, 61):
        beta = float(schedule.betas[t])
        x = (1 - beta) ** 0.5 * x + beta**0.5 * torch.randn(n, 3, generator=generator,
                                                             dtype=torch.float64)
        if t in checkpoints:
            alpha_bar = float(schedule.alphas_cumprod[t])
            closed = schedule.q_sample(
                x0.expand(n, 3), torch.full((n,), t),
                torch.randn(n, 3, generator=generator, dtype=torch.float64),
            )
            for draws in (x, closed):
                # 5 standard errors of the mean and of the variance
                assert torch.allclose(draws.mean(0), alpha_bar**0.5 * x0,
                                      atol=5 * (1 - alpha_bar) ** 0.5 / n**0.5)
                assert torch.allclose(draws.var(0), torch.full((3,), 1 - alpha_bar,
                                      dtype=torch.float64), rtol=5 * (2 / n) ** 0.5)


def test_posterior_variance_formula() -> None:
    schedule = NoiseSchedule.linear(50)
    t = 17
    expected = ((1 - schedule.alphas_cumprod[t - 1]) / (1 - schedule.alphas_cumprod[t])
                * schedule.betas[t])
    assert schedule.posterior_variance[t] == pytest.approx(expected)
    assert schedule.posterior_variance[1] == 0


def test_switch_step_from_beta_1_as_in_the_thesis() -> None:
    """beta_1 = 0.1 on a 4000-step cosine schedule is step 793 counted from 0 (thesis sec.
    5.7.3); on the 1000-step linear schedule it leaves ~900 diffusion steps (table 5.7.1)."""
    assert NoiseSchedule.cosine(4000).step_at_noise_level(0.1) == 794
    linear = NoiseSchedule.linear(1000)
    assert 1000 - linear.step_at_noise_level(0.1) == pytest.approx(900, abs=5)
    for beta_1 in (0.001, 0.025, 0.2):
        s = linear.step_at_noise_level(beta_1)
        assert 1 - linear.alphas_cumprod[s] <= beta_1 < 1 - linear.alphas_cumprod[s + 1]


def test_switch_step_from_log_snr_agrees_with_beta_1() -> None:
    schedule = NoiseSchedule.cosine(1000)
    for beta_1 in (0.01, 0.1, 0.3):
        log_snr = float(np.log((1 - beta_1) / beta_1))
        assert schedule.step_at_log_snr(log_snr) == schedule.step_at_noise_level(beta_1)


def test_training_steps_uniform_and_beta_weighted() -> None:
    schedule = NoiseSchedule.linear(20, 0.01, 0.2)
    uniform = torch.rand(200_000, generator=torch.Generator().manual_seed(1))
    steps = schedule.timesteps_from_uniform(uniform, low=5, high=20)
    assert int(steps.min()) == 5 and int(steps.max()) == 20
    counts = torch.bincount(steps, minlength=21)[5:].double()
    assert torch.allclose(counts / counts.sum(), torch.full((16,), 1 / 16.0,
                          dtype=torch.float64), atol=0.004)
    weighted = schedule.timesteps_from_uniform(uniform, low=5, high=20, weighting="beta")
    counts = torch.bincount(weighted, minlength=21)[5:].double()
    expected = torch.from_numpy(schedule.betas[5:] / schedule.betas[5:].sum())
    assert torch.allclose(counts / counts.sum(), expected, atol=0.004)
    with pytest.raises(ValueError):
        schedule.timesteps_from_uniform(uniform, low=0)
