"""Epsilon and v parameterisations, and the simple / VLB objectives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calosim.diffusion import (
    NoiseSchedule,
    diffusion_loss,
    prediction_target,
    split_prediction,
    vlb_weights,
)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_the_true_target_gives_back_x0_and_the_noise(prediction: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    noise = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    signal, sigma = 0.6, 0.8
    x_t = signal * x0 + sigma * noise
    target = prediction_target(prediction, x0, noise, signal, sigma)
    x0_hat, eps_hat = split_prediction(prediction, target, x_t, signal, sigma)
    assert torch.allclose(x0_hat, x0) and torch.allclose(eps_hat, noise)


def test_clipping_keeps_the_estimates_consistent_with_x_t() -> None:
    x0 = torch.tensor([[3.0, -0.5]], dtype=torch.float64)
    noise = torch.tensor([[0.2, 0.1]], dtype=torch.float64)
    signal, sigma = 0.9, (1 - 0.81) ** 0.5
    x_t = signal * x0 + sigma * noise
    x0_hat, eps_hat = split_prediction("epsilon", noise, x_t, signal, sigma, clip=(-1.0, 1.0))
    assert x0_hat.tolist() == [[1.0, -0.5]]
    assert torch.allclose(signal * x0_hat + sigma * eps_hat, x_t)


def test_unknown_prediction_is_refused() -> None:
    with pytest.raises(ValueError):
        prediction_target("score", torch.zeros(1), torch.zeros(1), 1.0, 0.0)  # type: ignore[arg-type]


def test_vlb_weights_equal_the_kl_between_gaussian_posteriors() -> None:
    """L_{t-1} = |mu~(x_t, x_0) - mu~(x_t, x0_hat)|^2 / (2 beta~_t) equals w_t |eps - eps_hat|^2
    (eq. 2.12) for t >= 2."""
    schedule = NoiseSchedule.linear(100)
    weights = vlb_weights(schedule)
    rng = np.random.default_rng(0)
    for t in (2, 10, 99):
        ab, ab_prev = schedule.alphas_cumprod[t], schedule.alphas_cumprod[t - 1]
        beta = schedule.betas[t]
        x0, eps, eps_hat = rng.standard_normal((3, 4))
        x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps
        x0_hat = (x_t - (1 - ab) ** 0.5 * eps_hat) / ab**0.5

        def posterior_mean(start, ab=ab, ab_prev=ab_prev, beta=beta, t=t, x_t=x_t):
            return (ab_prev**0.5 * beta / (1 - ab) * start
                    + schedule.alphas[t] ** 0.5 * (1 - ab_prev) / (1 - ab) * x_t)

        kl = ((posterior_mean(x0) - posterior_mean(x0_hat)) ** 2).sum() / (
            2 * schedule.posterior_variance[t])
        assert kl == pytest.approx(weights[t] * ((eps - eps_hat) ** 2).sum(), rel=1e-9)
    assert weights[1] == pytest.approx(1 / (2 * schedule.alphas[1]))


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_losses_vanish_at_the_target_and_vlb_weights_the_noise_error(prediction: str) -> None:
    schedule = NoiseSchedule.cosine(50)
    generator = torch.Generator().manual_seed(2)
    x0 = torch.randn(6, 1, 4, 4, generator=generator, dtype=torch.float64)
    noise = torch.randn(6, 1, 4, 4, generator=generator, dtype=torch.float64)
    t = torch.tensor([1, 5, 10, 20, 40, 50])
    x_t = schedule.q_sample(x0, t, noise)
    signal = schedule.at(np.sqrt(schedule.alphas_cumprod), t, x0)
    sigma = schedule.at(np.sqrt(1 - schedule.alphas_cumprod), t, x0)
    target = prediction_target(prediction, x0, noise, signal, sigma)
    for objective in ("simple", "vlb"):
        loss = diffusion_loss(prediction, objective, target, x0, x_t, noise, t, schedule)
        assert loss.shape == (6,) and torch.allclose(loss, torch.zeros(6, dtype=torch.float64))
    off = target + 0.1
    simple = diffusion_loss(prediction, "simple", off, x0, x_t, noise, t, schedule)
    assert torch.allclose(simple, torch.full((6,), 0.01, dtype=torch.float64))
    vlb = diffusion_loss(prediction, "vlb", off, x0, x_t, noise, t, schedule)
    _, eps_hat = split_prediction(prediction, off, x_t, signal, sigma)
    expected = torch.from_numpy(vlb_weights(schedule))[t] * (eps_hat - noise).square().mean(
        dim=(1, 2, 3))
    assert torch.allclose(vlb, expected)
