"""Heun's method (the explicit trapezoidal rule): two evaluations per step, second order,
as used for the probability-flow ODE by Karras et al. 2022, "Elucidating the design space
of diffusion-based generative models". As in their Algorithm 1, the last step, onto the
data (t = 0), is Euler's: a network learns the velocity there worst (a flow from noise
has velocity -z at t = 0, whatever the data), and the trapezoid's evaluation at t = 0
costs more than the first-order error of that one step (validation/zdc_flow)."""

from __future__ import annotations

import torch

from calosim.flow.base import FlowSolver, Velocity


class HeunSolver(FlowSolver):
    """An Euler step to z', then the step with the mean of the velocities at z and z'
    (the last step, onto t = 0, is the Euler step alone)."""

    evaluations_per_step = 2

    @property
    def evaluations(self) -> int:
        return 2 * self.steps - 1

    def sample(self, velocity: Velocity, noise: torch.Tensor) -> torch.Tensor:
        times = self.times()
        z = noise
        for t, t_next in zip(times[:-1], times[1:], strict=True):
            h = t - t_next
            slope = velocity(z, t)
            predicted = z - h * slope
            z = predicted if t_next == 0.0 else z - 0.5 * h * (slope + velocity(predicted, t_next))
        return z
