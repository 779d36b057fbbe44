"""BooVAE (Kuzina, Egorov and Burnaev; the MLSS'19 slides): a VAE whose prior grows by
boosting, one batch of components per task.

The optimal prior of a VAE is the aggregated posterior p*(z) = (1/N) sum_n q(z | x_n).
After training task i, components are added greedily (slides, "Boosting for
Incremental Learning"): with p_{k-1} the current prior and the target
p* = i/(i+1) p_old + 1/(i+1) p*_i (the prior the past tasks left, and the aggregated
posterior of a random subset of task i's data),
  h* = argmin_h KL(h || [p* / p_{k-1}]^lambda), h among the posteriors of that subset,
  alpha* = argmin_alpha KL(alpha h* + (1 - alpha) p_{k-1} || p*) (grid search),
  p_k = alpha* h* + (1 - alpha*) p_{k-1};
both KLs by Monte Carlo. Components of past tasks stay in the prior, so generation keeps
drawing latents where past tasks' data lived. To keep those latents decoded as before,
the decoder is aligned on draws from the prior with past particles to its copy frozen at
the start of the task (the replay alignment of calosim's MeRGAN strategy: the slides do
not say how the decoder is protected, this is our choice).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calosim.continual.strategies.base import TaskData
from calosim.continual.strategies.mergan import MeRGANOptions
from calosim.continual.strategies.vae import ReplayStrategy
from calosim.models.boosted_vae import BoostedPriorVAE, gaussian_log_density

LogDensity = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BooVAEOptions(MeRGANOptions):
    """Boosting options: components per task, candidate posteriors, lambda, MC size."""

    components_per_task: int = 5
    candidates: int = 256
    boost_lambda: float = 1.0
    monte_carlo: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("components_per_task", "candidates", "monte_carlo"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.boost_lambda <= 0:
            raise ValueError(f"boost_lambda must be positive, got {self.boost_lambda}")


def mixture_log_density(z: torch.Tensor, means: torch.Tensor, log_variances: torch.Tensor,
                        log_weights: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k N(z; mean_k, var_k) for z (B, d) -> (B,)."""
    densities = gaussian_log_density(z[:, None, :], means, log_variances)
    return torch.logsumexp(log_weights + densities, dim=1)


class BooVAEStrategy(ReplayStrategy):
    """Boosted mixture prior per task, decoder aligned on draws from past components."""

    name = "boovae"
    model_name = "boovae"
    options_class = BooVAEOptions
    options: BooVAEOptions
    model: BoostedPriorVAE

    def batch_losses(self, task: TaskData, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = super().batch_losses(task, rows)
        replayed = self.replay()
        if replayed is not None:
            noise, conditions, targets = replayed
            losses["alignment"] = F.mse_loss(self.model.generate(noise, conditions), targets)
            losses["loss"] = losses["loss"] + self.options.alignment_weight * losses["alignment"]
        return losses

    def consolidate(self, task: TaskData) -> None:
        super().consolidate(task)
        self.boost(task)

    def boost(self, task: TaskData) -> list[float]:
        """Add ``components_per_task`` components for ``task``; returns their weights."""
        o = self.options
        rows = torch.randperm(len(task), generator=self.generator)[: o.candidates]
        device = self.context.device
        self.model.eval()
        with torch.no_grad():
            means, log_variances = self.model.posterior(task.images[rows].to(device),
                                                        task.conditions[rows].to(device))
            target = self._target(task.index, means, log_variances)
            eps = torch.randn(o.monte_carlo, means.shape[1], generator=self.generator).to(means)
            weights = []
            for _ in range(o.components_per_task):
                best = self._best_candidate(means, log_variances, eps, target)
                weight = self._best_weight(means[best], log_variances[best], eps, target)
                self.model.add_component(means[best], log_variances[best], weight)
                weights.append(weight)
        self.model.train()
        return weights

    def _target(self, task: int, means: torch.Tensor,
                log_variances: torch.Tensor) -> LogDensity:
        """log p*(z): the task's aggregated posterior, mixed with the prior of past tasks."""
        n = len(means)
        current = (means, log_variances, torch.full((n,), -math.log(n)).to(means))
        if int(self.model.n_components) == 0:
            return lambda z: mixture_log_density(z, *current)
        old_means, old_log_variances, old_weights = (t.clone() for t in self.model.components())
        share = 1.0 / (task + 1)

        def log_density(z: torch.Tensor) -> torch.Tensor:
            old = mixture_log_density(z, old_means, old_log_variances, old_weights.log())
            return torch.logaddexp(old + math.log(1 - share),
                                   mixture_log_density(z, *current) + math.log(share))

        return log_density

    def _best_candidate(self, means: torch.Tensor, log_variances: torch.Tensor,
                        eps: torch.Tensor, target: LogDensity) -> int:
        """argmin_h E_h[log h - lambda (log p* - log p_{k-1})] over the candidates."""
        n, s, d = len(means), len(eps), means.shape[1]
        z = means[:, None] + (0.5 * log_variances[:, None]).exp() * eps[None]
        log_h = gaussian_log_density(z, means[:, None], log_variances[:, None])
        flat = z.reshape(n * s, d)
        ratio = (target(flat) - self.model.prior_log_density(flat)).view(n, s)
        return int((log_h - self.options.boost_lambda * ratio).mean(dim=1).argmin())

    def _best_weight(self, mean: torch.Tensor, log_variance: torch.Tensor, eps: torch.Tensor,
                     target: LogDensity) -> float:
        """argmin_alpha KL(alpha h + (1 - alpha) p || p*) on a grid; 1 for the first one."""
        if int(self.model.n_components) == 0:
            return 1.0
        from_h = mean + (0.5 * log_variance).exp() * eps
        prior_noise = torch.randn(len(eps), eps.shape[1] + 1, generator=self.generator)
        from_prior = self.model.sample_prior(prior_noise.to(eps))
        best, best_kl = 0.5, math.inf
        for alpha in torch.linspace(0.02, 0.98, 49).tolist():
            kl = 0.0
            for z, share in ((from_h, alpha), (from_prior, 1 - alpha)):
                log_mixture = torch.logaddexp(
                    math.log(alpha) + gaussian_log_density(z, mean, log_variance),
                    math.log(1 - alpha) + self.model.prior_log_density(z))
                kl += share * float((log_mixture - target(z)).mean())
            if kl < best_kl:
                best, best_kl = alpha, kl
        return best
