"""Lifelong VAE (Ramapuram et al.): a teacher-student VAE with a consistency regulariser.

The teacher (the model frozen at the start of the task, a summary of all past tasks)
generates synthetic responses for past tasks' particles; the student (initialised with
the teacher's weights) trains on current and synthetic data, the synthetic share being
k / (k + 1) after k tasks (``replay_ratio`` 1 per past task), with the augmented ELBO
plus the consistency regulariser KL(Q_student(z | x_hat) || Q_teacher(z | x_hat)) on the
synthetic data, which distils the teacher's posterior into the student (paper section 4.1,
in its isotropic-Gaussian-posterior form).

Adaptation to a conditional simulator: the paper's discrete latent and its information
regulariser exist to tell which past distribution a sample comes from; here the particle
(and so the energy period) is an input of encoder and decoder, which plays that role.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from calosim.continual.strategies.base import TaskData
from calosim.continual.strategies.vae import ReplayOptions, ReplayStrategy


def gaussian_kl(mean_p: torch.Tensor, log_var_p: torch.Tensor, mean_q: torch.Tensor,
                log_var_q: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_p, exp log_var_p) || N(mean_q, exp log_var_q)) of diagonal Gaussians,
    summed over dimensions, averaged over rows."""
    per_dimension = 0.5 * (log_var_q - log_var_p
                           + (log_var_p.exp() + (mean_p - mean_q).square()) / log_var_q.exp()
                           - 1.0)
    return per_dimension.sum(dim=1).mean()


@dataclass
class LifelongVAEOptions(ReplayOptions):
    """Lifelong VAE options: synthetic rows per past task and consistency weight."""

    replay_ratio: float = 1.0
    consistency_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.consistency_weight < 0:
            raise ValueError(
                f"consistency_weight must not be negative, got {self.consistency_weight}")


class LifelongVAEStrategy(ReplayStrategy):
    """Teacher-student training with posterior consistency on the teacher's samples."""

    name = "lifelong_vae"
    options_class = LifelongVAEOptions
    options: LifelongVAEOptions

    def batch_losses(self, task: TaskData, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        replayed = self.replay()
        if replayed is None or self.frozen is None:
            return super().batch_losses(task, rows)
        _, synthetic_conditions, synthetic = replayed
        device = synthetic.device
        images = torch.cat([task.images[rows].to(device), synthetic])
        conditions = torch.cat([task.conditions[rows].to(device), synthetic_conditions])
        losses = self.model.training_losses(self.batch(images, conditions))
        student = self.model.posterior(synthetic, synthetic_conditions)
        with torch.no_grad():
            teacher = self.frozen.posterior(synthetic, synthetic_conditions)
        losses["consistency"] = gaussian_kl(*student, *teacher)
        losses["loss"] = losses["loss"] + self.options.consistency_weight * losses["consistency"]
        return losses
