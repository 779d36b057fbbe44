"""Conditional VAE with a boosted mixture prior (BooVAE, Kuzina, Egorov and Burnaev).

The prior p(z) is a weighted mixture of diagonal Gaussians h_k (each the posterior
q(z | x_k, y_k) of a chosen training example, stored as mean and log variance), grown by
boosting: p_k = alpha h + (1 - alpha) p_{k-1}. Before its first component the prior is
N(0, I). The loss is the negative ELBO with a one-sample Monte Carlo KL,
log q(z | x, y) - log p(z), since the KL to a mixture has no closed form.

Generation: noise = [latent_dim normals | 1 normal -> uniform choosing the component
by weight]; z = mean_k + sigma_k * eps, decoded with the particle. The boosting itself
(which components, which weights) is calosim.continual.strategies.boovae.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from calosim.models.base import Batch
from calosim.models.cvae import ConditionalVAE, CVAEConfig
from calosim.models.registry import register

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class BoostedVAEConfig(CVAEConfig):
    """Conditional VAE settings plus the most prior components the model can hold."""

    max_components: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_components < 1:
            raise ValueError(f"max_components must be at least 1, got {self.max_components}")


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor,
                         log_variance: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag exp(log_variance)), summed over the last dimension; the
    arguments broadcast (z (B, 1, d) against K components (K, d) gives (B, K))."""
    per_dimension = (z - mean).square() / log_variance.exp() + log_variance + _LOG_2PI
    return -0.5 * per_dimension.sum(dim=-1)


@register("boovae")
class BoostedPriorVAE(ConditionalVAE):
    """ConditionalVAE whose prior is a boosted mixture of Gaussian components."""

    config_class = BoostedVAEConfig
    config: BoostedVAEConfig

    def __init__(self, config: BoostedVAEConfig) -> None:
        super().__init__(config)
        k, d = config.max_components, config.latent_dim
        self.register_buffer("component_means", torch.zeros(k, d))
        self.register_buffer("component_log_variances", torch.zeros(k, d))
        self.register_buffer("component_weights", torch.zeros(k))
        self.register_buffer("n_components", torch.zeros((), dtype=torch.long))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim + 1,)

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means, log variances, weights) of the prior; N(0, I) before any component."""
        n = int(self.n_components)
        if n == 0:
            d = self.config.latent_dim
            zeros = self.component_means.new_zeros(1, d)
            return zeros, zeros, self.component_weights.new_ones(1)
        return (self.component_means[:n], self.component_log_variances[:n],
                self.component_weights[:n])

    def prior_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of the mixture prior, (B, d) -> (B,)."""
        means, log_variances, weights = self.components()
        log_densities = gaussian_log_density(z[:, None, :], means, log_variances)
        return torch.logsumexp(weights.log() + log_densities, dim=1)

    def add_component(self, mean: torch.Tensor, log_variance: torch.Tensor,
                      weight: float) -> None:
        """p <- weight * N(mean, exp log_variance) + (1 - weight) * p (weight 1 replaces
        the initial N(0, I))."""
        n = int(self.n_components)
        if n >= self.config.max_components:
            raise ValueError(f"the prior already holds max_components = {n} components")
        if not 0 < weight <= 1:
            raise ValueError(f"a component weight must lie in (0, 1], got {weight}")
        with torch.no_grad():
            self.component_weights[:n] *= 1 - weight
            self.component_means[n] = mean
            self.component_log_variances[n] = log_variance
            self.component_weights[n] = weight
            self.n_components.fill_(n + 1)

    def sample_prior(self, noise: torch.Tensor) -> torch.Tensor:
        """Prior draws from noise (B, latent_dim + 1): a component by weight, then z."""
        means, log_variances, weights = self.components()
        uniform = torch.special.ndtr(noise[:, -1]).contiguous()
        cumulative = weights.cumsum(0) / weights.sum()
        chosen = torch.searchsorted(cumulative, uniform).clamp(max=len(weights) - 1)
        return means[chosen] + (0.5 * log_variances[chosen]).exp() * noise[:, :-1]

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.decode(self.sample_prior(noise), conditions)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if int(self.n_components) == 0:
            return super().training_losses(batch)
        mean, log_variance = self.posterior(batch.images, batch.conditions)
        codes = mean + (0.5 * log_variance).exp() * batch.randn(*mean.shape)
        losses = self.reconstruction_losses(batch.images, self.decode(codes, batch.conditions))
        posterior = gaussian_log_density(codes, mean, log_variance)
        losses["kl"] = (posterior - self.prior_log_density(codes)).mean()
        losses["loss"] = losses.pop("weighted") + self.config.kl_weight * losses["kl"]
        return losses
