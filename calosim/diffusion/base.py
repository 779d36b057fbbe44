"""The reverse process shared by all samplers: steps from x_start down to x_end.

A sampler walks a decreasing list of steps; at each one the network output gives
estimates of x_0 and of the noise (see prediction.py) and the sampler's own update
rule moves x_t to x_{t_prev}. Ending at step 0 yields data; ending at a step s > 0
yields a noisy x_s, which is where DAED hands over to its denoising autoencoder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from calosim.diffusion.noise import StepNoise
from calosim.diffusion.prediction import Prediction, split_prediction
from calosim.diffusion.schedules import NoiseSchedule

# (x_t, t) -> network output (noise or velocity, as the model was trained)
DenoiseFunction = Callable[[torch.Tensor, int], torch.Tensor]


class Sampler(ABC):
    """Runs the reverse diffusion with a denoising network."""

    def __init__(
        self, schedule: NoiseSchedule, prediction: Prediction,
        clip: tuple[float, float] | None = None,
    ) -> None:
        self.schedule = schedule
        self.prediction = prediction
        self.clip = clip

    @abstractmethod
    def timesteps(self, start: int, end: int) -> list[int]:
        """The steps visited, decreasing from ``start`` to ``end`` (both included)."""

    @abstractmethod
    def update(
        self, x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int,
        noise: StepNoise,
    ) -> torch.Tensor:
        """x_{t_prev} from x_t and the network's estimates of x_0 and eps."""

    def sample(
        self, denoise: DenoiseFunction, x_start: torch.Tensor, *, start: int | None = None,
        end: int = 0, noise: StepNoise | None = None,
    ) -> torch.Tensor:
        """Run from x_start (a draw of step ``start``, default T) down to step ``end``.

        ``noise`` supplies the per-step noise; by default it is keyed by x_start itself,
        so the result is a deterministic function of x_start, row by row.
        """
        start = self.schedule.n_steps if start is None else start
        if not 0 <= end < start <= self.schedule.n_steps:
            raise ValueError(f"cannot sample from step {start} to step {end} "
                             f"of a {self.schedule.n_steps}-step schedule")
        noise = StepNoise(x_start) if noise is None else noise
        steps = self.timesteps(start, end)
        x = x_start
        for t, t_prev in zip(steps[:-1], steps[1:], strict=True):
            signal, sigma = self.coefficients(t)
            x0, eps = split_prediction(self.prediction, denoise(x, t), x, signal, sigma, self.clip)
            x = self.update(x, x0, eps, t, t_prev, noise)
        return x

    def coefficients(self, t: int) -> tuple[float, float]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))."""
        alpha_bar = float(self.schedule.alphas_cumprod[t])
        return alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5

    def step_noise(self, noise: StepNoise, t: int, like: torch.Tensor) -> torch.Tensor:
        """The noise of the transition out of step t, shaped like x_t."""
        return noise.normal(t, tuple(like.shape[1:]), like.dtype)

    def describe(self) -> dict[str, object]:
        """The sampler's settings, for logs and reports."""
        return {"sampler": type(self).__name__, "prediction": self.prediction}
