"""Variance schedules of the forward diffusion process (thesis sec. 2.3).

The forward process adds noise in T steps, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1},
beta_t I), so q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) (eq. 2.7) with
alpha_bar_t the product of (1 - beta_i) for i <= t. Steps run t = 1..T; every array here
has T + 1 entries and index 0 stands for the clean data (beta_0 = 0, alpha_bar_0 = 1), so
a sampler that arrives at step 0 holds a data sample.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

ScheduleKind = Literal["linear", "cosine"]
TimestepWeighting = Literal["uniform", "beta"]


class NoiseSchedule:
    """beta_1..beta_T and the quantities derived from them, in float64."""

    def __init__(self, betas: np.ndarray) -> None:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError("a noise schedule needs at least one step")
        if not (np.isfinite(betas).all() and (betas > 0).all() and (betas < 1).all()):
            raise ValueError("every beta_t of a noise schedule must lie in (0, 1)")
        self.betas = np.concatenate([[0.0], betas])
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(self.alphas)

    @classmethod
    def linear(
        cls, n_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> NoiseSchedule:
        """beta_t rising linearly from beta_start to beta_end (Ho et al. 2020)."""
        if n_steps < 1:
            raise ValueError(f"a schedule needs at least one step, got {n_steps}")
        return cls(np.linspace(beta_start, beta_end, n_steps))

    @classmethod
    def cosine(
        cls, n_steps: int, offset: float = 0.008, max_beta: float = 0.999
    ) -> NoiseSchedule:
        """alpha_bar_t = f(t) / f(0), f(t) = cos^2((t / T + c) / (1 + c) * pi / 2), with
        beta_t clipped at ``max_beta`` (Nichol and Dhariwal 2021)."""
        if n_steps < 1:
            raise ValueError(f"a schedule needs at least one step, got {n_steps}")
        t = np.arange(n_steps + 1, dtype=np.float64) / n_steps
        f = np.cos((t + offset) / (1.0 + offset) * math.pi / 2.0) ** 2
        alphas_cumprod = f / f[0]
        betas = 1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1]
        return cls(np.clip(betas, 1e-12, max_beta))

    @classmethod
    def build(
        cls, kind: ScheduleKind, n_steps: int, *, beta_start: float = 1e-4,
        beta_end: float = 0.02, cosine_offset: float = 0.008, max_beta: float = 0.999,
    ) -> NoiseSchedule:
        """The schedule a model config names."""
        if kind == "linear":
            return cls.linear(n_steps, beta_start, beta_end)
        if kind == "cosine":
            return cls.cosine(n_steps, cosine_offset, max_beta)
        raise ValueError(f"unknown noise schedule {kind!r} (known: linear, cosine)")

    @property
    def n_steps(self) -> int:
        """T, the number of noising steps."""
        return len(self.betas) - 1

    @property
    def posterior_variance(self) -> np.ndarray:
        """beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t of q(x_{t-1} | x_t, x_0)
        (eq. 2.8); 0 at t = 1 and, by convention, at index 0."""
        variance = np.zeros_like(self.betas)
        variance[1:] = (1.0 - self.alphas_cumprod[:-1]) / (1.0 - self.alphas_cumprod[1:])
        return variance * self.betas

    def log_snr(self) -> np.ndarray:
        """log(alpha_bar_t / (1 - alpha_bar_t)), the log signal-to-noise ratio of eq. 5.2 per
        unit signal; +inf at index 0."""
        with np.errstate(divide="ignore"):
            return np.log(self.alphas_cumprod) - np.log1p(-self.alphas_cumprod)

    def step_at_noise_level(self, beta_1: float) -> int:
        """The step whose corruption q(x_t | x_0) matches N(sqrt(1 - beta_1) x_0, beta_1 I):
        the last t with 1 - alpha_bar_t <= beta_1 (at least 1).

        This is how DAED turns its beta_1 into a switch point (thesis sec. 5.7.3: beta_1 =
        0.1 on a 4000-step cosine schedule corresponds to step 793 counted from 0, t = 794
        here).
        """
        if not 0 < beta_1 < 1:
            raise ValueError(f"beta_1 must lie in (0, 1), got {beta_1}")
        noise_levels = 1.0 - self.alphas_cumprod
        return max(1, int(np.searchsorted(noise_levels, beta_1, side="right")) - 1)

    def step_at_log_snr(self, log_snr: float) -> int:
        """The last step whose log SNR is still >= ``log_snr`` (at least 1)."""
        levels = self.log_snr()
        return max(1, int(np.count_nonzero(levels >= log_snr)) - 1)

    # ------------------------------------------------------------------ tensor views

    def at(self, values: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] for a (B,) tensor of steps, shaped (B, 1, ...) to broadcast over ``like``."""
        table = torch.as_tensor(values, dtype=like.dtype, device=like.device)
        return table[t].view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, a draw of q(x_t | x_0)."""
        signal = self.at(np.sqrt(self.alphas_cumprod), t, x0)
        sigma = self.at(np.sqrt(1.0 - self.alphas_cumprod), t, x0)
        return signal * x0 + sigma * noise

    def timesteps_from_uniform(
        self, uniform: torch.Tensor, low: int = 1, high: int | None = None,
        weighting: TimestepWeighting = "uniform",
    ) -> torch.Tensor:
        """Training steps in [low, high] from uniform [0, 1) draws, either uniformly or with
        P(t) proportional to beta_t (the weighted sampler of DAED, thesis sec. 5.9.5)."""
        high = self.n_steps if high is None else high
        if not 1 <= low <= high <= self.n_steps:
            raise ValueError(f"training steps [{low}, {high}] outside 1..{self.n_steps}")
        if weighting == "uniform":
            weights = np.ones(high - low + 1)
        elif weighting == "beta":
            weights = self.betas[low : high + 1]
        else:
            raise ValueError(f"unknown timestep weighting {weighting!r} (known: uniform, beta)")
        cdf = torch.as_tensor(np.cumsum(weights) / weights.sum(), dtype=torch.float64,
                              device=uniform.device)
        index = torch.searchsorted(cdf, uniform.to(torch.float64), right=True)
        return index.clamp(max=high - low) + low
