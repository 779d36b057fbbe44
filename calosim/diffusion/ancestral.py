"""Ancestral sampling of DDPM (Ho et al. 2020): every step of the schedule, drawing
x_{t-1} ~ N(mu~(x_t, x0_hat), sigma_t^2 I) with mu~ the posterior mean of eq. 2.8."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from calosim.diffusion.base import Sampler
from calosim.diffusion.noise import StepNoise
from calosim.diffusion.prediction import Prediction
from calosim.diffusion.schedules import NoiseSchedule

AncestralVariance = Literal["posterior", "beta"]


class AncestralSampler(Sampler):
    """DDPM sampling with sigma_t^2 = beta~_t ("posterior") or beta_t ("beta").

    The last step into x_0 returns the posterior mean (no noise); a run that stops at a
    step s > 0 adds noise on every step, so its result is a proper draw of x_s.
    """

    def __init__(
        self, schedule: NoiseSchedule, prediction: Prediction,
        clip: tuple[float, float] | None = None, variance: AncestralVariance = "posterior",
    ) -> None:
        super().__init__(schedule, prediction, clip)
        if variance not in ("posterior", "beta"):
            raise ValueError(f"unknown ancestral variance {variance!r} (known: posterior, beta)")
        self.variance = variance
        alphas_cumprod = schedule.alphas_cumprod
        previous = np.concatenate([[1.0], alphas_cumprod[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            # mu~ = c_x0 * x0 + c_xt * x_t (eq. 2.8); index 0 is never used
            self._c_x0 = np.sqrt(previous) * schedule.betas / (1.0 - alphas_cumprod)
            self._c_xt = np.sqrt(schedule.alphas) * (1.0 - previous) / (1.0 - alphas_cumprod)
        chosen = schedule.posterior_variance if variance == "posterior" else schedule.betas
        self._sigma = np.sqrt(chosen)

    def timesteps(self, start: int, end: int) -> list[int]:
        return list(range(start, end - 1, -1))

    def update(
        self, x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int,
        noise: StepNoise,
    ) -> torch.Tensor:
        mean = float(self._c_x0[t]) * x0 + float(self._c_xt[t]) * x_t
        if t_prev == 0:
            return mean
        return mean + float(self._sigma[t]) * self.step_noise(noise, t, x_t)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "steps": self.schedule.n_steps, "variance": self.variance}
