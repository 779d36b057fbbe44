"""Euler's method: one velocity evaluation per step, first order."""

from __future__ import annotations

import torch

from calosim.flow.base import FlowSolver, Velocity


class EulerSolver(FlowSolver):
    """z(t - h) = z(t) - h v(z(t), t)."""

    def sample(self, velocity: Velocity, noise: torch.Tensor) -> torch.Tensor:
        times = self.times()
        z = noise
        for t, t_next in zip(times[:-1], times[1:], strict=True):
            z = z - (t - t_next) * velocity(z, t)
        return z
