"""Conditional variational autoencoder (Kingma and Welling 2014; Sohn et al. 2015), the
"cond VAE" baseline of thesis table 4.3.1.

The encoder sees the response and the particle and gives a diagonal Gaussian
q(z | x, y) = N(mu, sigma^2); the decoder sees a sample z and the particle. The loss is
the negative ELBO (thesis eq. 2.3) with the e2e Sinkhorn AE's reconstruction term:

    alpha * [MSE + w_lap * LaplacianL1 + w_ch * ChannelError](x, p(z, y))
    + kl_weight * KL(q(z | x, y) || N(0, I))

With a Gaussian decoder of fixed per-pixel variance s^2 and the MSE alone averaged over
the 1936 pixels, the exact ELBO has kl_weight = 2 s^2 / 1936: kl_weight sets how noisy
the decoder is assumed to be. Generation decodes z ~ N(0, I) with y: the latent is the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from calosim.models.base import Batch
from calosim.models.registry import register
from calosim.nn.conditional_ae import ConditionalAEConfig, ConditionalAutoencoder

# Bounds on log sigma^2 of the posterior: keep exp() finite early in training.
LOG_VARIANCE_RANGE = (-12.0, 6.0)


@dataclass
class CVAEConfig(ConditionalAEConfig):
    """Hyper-parameters of the conditional VAE (backbone fields: ConditionalAEConfig)."""

    # large: with the channel term in the reconstruction a weak pull leaves the codes far
    # from N(0, I) and prior samples decode badly (ZN validation, configs/zdc/cvae.yaml)
    kl_weight: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight must not be negative, got {self.kl_weight}")


def gaussian_kl_to_standard_normal(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)), summed over dimensions, averaged over rows."""
    per_dimension = 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance)
    return per_dimension.sum(dim=1).mean()


@register("cvae")
class ConditionalVAE(ConditionalAutoencoder):
    """Conditional VAE: condition in encoder and decoder, standard normal prior."""

    config_class = CVAEConfig
    config: CVAEConfig
    encoder_outputs = 2  # mean and log variance per latent dimension

    def posterior(
        self, images: torch.Tensor, conditions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log variance (each (B, latent_dim)) of q(z | x, y)."""
        mean, log_variance = self.encoder(images, conditions).chunk(2, dim=1)
        return mean, log_variance.clamp(*LOG_VARIANCE_RANGE)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        mean, log_variance = self.posterior(batch.images, batch.conditions)
        # reparametrisation: the sampling noise comes from the batch's generator
        codes = mean + (0.5 * log_variance).exp() * batch.randn(*mean.shape)
        losses = self.reconstruction_losses(batch.images, self.decode(codes, batch.conditions))
        losses["kl"] = gaussian_kl_to_standard_normal(mean, log_variance)
        losses["loss"] = losses.pop("weighted") + c.kl_weight * losses["kl"]
        return losses
