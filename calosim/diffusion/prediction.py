"""What the denoising network predicts, and the training objectives of thesis sec. 2.3.

With x_t = s_t x_0 + sigma_t eps (s_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t)) a
network predicts either the noise eps (Ho et al. 2020) or the velocity v = s_t eps -
sigma_t x_0 (Salimans and Ho 2022), which stays well scaled at both ends of the schedule.
Either output gives estimates of x_0 and eps, the two quantities every sampler needs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from calosim.diffusion.schedules import NoiseSchedule

Prediction = Literal["epsilon", "v"]
Objective = Literal["simple", "vlb"]
Coefficient = float | torch.Tensor


def prediction_target(
    prediction: Prediction, x0: torch.Tensor, noise: torch.Tensor,
    signal: Coefficient, sigma: Coefficient,
) -> torch.Tensor:
    """The regression target of the network for x_t = signal * x0 + sigma * noise."""
    if prediction == "epsilon":
        return noise
    if prediction == "v":
        return signal * noise - sigma * x0
    raise ValueError(f"unknown prediction {prediction!r} (known: epsilon, v)")


def split_prediction(
    prediction: Prediction, output: torch.Tensor, x_t: torch.Tensor,
    signal: Coefficient, sigma: Coefficient, clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat) from the network output at x_t.

    With ``clip`` the x_0 estimate is clamped to the data range and eps_hat recomputed
    from it, so both stay consistent with x_t (the usual "clipped denoising").
    """
    if prediction == "epsilon":
        eps = output
        x0 = (x_t - sigma * eps) / signal
    elif prediction == "v":
        x0 = signal * x_t - sigma * output
        eps = sigma * x_t + signal * output
    else:
        raise ValueError(f"unknown prediction {prediction!r} (known: epsilon, v)")
    if clip is not None:
        x0 = x0.clamp(*clip)
        eps = (x_t - signal * x0) / sigma
    return x0, eps


def vlb_weights(schedule: NoiseSchedule) -> np.ndarray:
    """Per-step weights w_t turning the noise error into the VLB term L_{t-1} (eq. 2.12):
    w_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)).

    sigma_t^2 is the posterior variance beta~_t for t >= 2; for t = 1 (where beta~_1 = 0)
    the Gaussian decoder p(x_0 | x_1) uses sigma_1^2 = beta_1, so L_0 is the same weighted
    noise error. Index 0 is unused (weight 0).
    """
    betas, alphas, alphas_cumprod = schedule.betas, schedule.alphas, schedule.alphas_cumprod
    weights = np.zeros_like(betas)
    weights[1] = 1.0 / (2.0 * alphas[1])
    weights[2:] = betas[2:] / (2.0 * alphas[2:] * (1.0 - alphas_cumprod[1:-1]))
    return weights


def diffusion_loss(
    prediction: Prediction, objective: Objective, output: torch.Tensor, x0: torch.Tensor,
    x_t: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule,
) -> torch.Tensor:
    """Per-example loss (B,) of the network ``output`` at x_t = q_sample(x0, t, noise).

    "simple": mean squared error to the prediction target (eq. 2.13 for eps prediction);
    "vlb": the noise error weighted by ``vlb_weights`` (eq. 2.12), per dimension.
    """
    signal = schedule.at(np.sqrt(schedule.alphas_cumprod), t, x0)
    sigma = schedule.at(np.sqrt(1.0 - schedule.alphas_cumprod), t, x0)
    dims = tuple(range(1, x0.dim()))
    if objective == "simple":
        target = prediction_target(prediction, x0, noise, signal, sigma)
        return (output - target).square().mean(dim=dims)
    if objective == "vlb":
        _, eps = split_prediction(prediction, output, x_t, signal, sigma)
        weight = schedule.at(vlb_weights(schedule), t, x0).flatten()
        return weight * (eps - noise).square().mean(dim=dims)
    raise ValueError(f"unknown objective {objective!r} (known: simple, vlb)")
