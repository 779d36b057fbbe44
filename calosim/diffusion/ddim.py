"""DDIM sampling (Song et al. 2021) on a subsequence of the training steps.

x_{t'} = sqrt(alpha_bar_{t'}) x0_hat + sqrt(1 - alpha_bar_{t'} - sigma^2) eps_hat + sigma z,
sigma = eta * sqrt((1 - alpha_bar_{t'}) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t /
alpha_bar_{t'}). eta = 0 is deterministic given x_T; eta = 1 on every training step is
the ancestral DDPM sampler with the posterior variance.
"""

from __future__ import annotations

import numpy as np
import torch

from calosim.diffusion.base import Sampler
from calosim.diffusion.noise import StepNoise
from calosim.diffusion.prediction import Prediction
from calosim.diffusion.schedules import NoiseSchedule


class DDIMSampler(Sampler):
    """DDIM with ``steps`` network evaluations (evenly spaced steps) and noise scale ``eta``."""

    def __init__(
        self, schedule: NoiseSchedule, prediction: Prediction,
        clip: tuple[float, float] | None = None, steps: int = 50, eta: float = 0.0,
    ) -> None:
        super().__init__(schedule, prediction, clip)
        if steps < 1:
            raise ValueError(f"DDIM needs at least one step, got {steps}")
        if eta < 0:
            raise ValueError(f"DDIM eta must not be negative, got {eta}")
        self.steps = steps
        self.eta = eta

    def timesteps(self, start: int, end: int) -> list[int]:
        """``steps`` + 1 evenly spaced integers from start to end (fewer if the range is
        shorter), always including both ends."""
        count = min(self.steps, start - end)
        spaced = np.rint(np.linspace(start, end, count + 1)).astype(int)
        return [int(t) for t in dict.fromkeys(spaced.tolist())]

    def update(
        self, x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int,
        noise: StepNoise,
    ) -> torch.Tensor:
        alpha_bar = float(self.schedule.alphas_cumprod[t])
        alpha_bar_prev = float(self.schedule.alphas_cumprod[t_prev])
        sigma = self.eta * np.sqrt(
            (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)
        )
        direction = max(1.0 - alpha_bar_prev - sigma**2, 0.0) ** 0.5
        x_prev = alpha_bar_prev**0.5 * x0 + direction * eps
        if sigma > 0:
            x_prev = x_prev + float(sigma) * self.step_noise(noise, t, x_t)
        return x_prev

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "steps": self.steps, "eta": self.eta}
