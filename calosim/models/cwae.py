"""Conditional Wasserstein autoencoder with an MMD penalty (Tolstikhin et al. 2018, WAE-MMD),
the "cond WAE (MMD)" baseline of thesis table 4.3.1.

A deterministic encoder q(x, y) -> z and a decoder p(z, y), both seeing the particle. The
aggregate code distribution is pulled towards the N(0, I) prior by the maximum mean
discrepancy with a sum of inverse multiquadric kernels:

    alpha * [MSE + w_lap * LaplacianL1 + w_ch * ChannelError](x, p(q(x, y), y))
    + mmd_weight * MMD^2(q(x, y), z)

with z ~ N(0, I) drawn per batch. Generation decodes z ~ N(0, I) with y.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from calosim.models.base import Batch
from calosim.models.registry import register
from calosim.nn.conditional_ae import ConditionalAEConfig, ConditionalAutoencoder
from calosim.nn.losses import mmd_inverse_multiquadric


@dataclass
class CWAEConfig(ConditionalAEConfig):
    """Hyper-parameters of the conditional WAE-MMD (backbone fields: ConditionalAEConfig)."""

    # large for the same reason as the cVAE's kl_weight (ZN validation, configs/zdc/cwae.yaml)
    mmd_weight: float = 1e4
    mmd_scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mmd_weight < 0:
            raise ValueError(f"mmd_weight must not be negative, got {self.mmd_weight}")
        if not self.mmd_scales or min(self.mmd_scales) <= 0:
            raise ValueError(f"mmd_scales must be positive numbers, got {list(self.mmd_scales)}")


@register("cwae")
class ConditionalWAE(ConditionalAutoencoder):
    """Conditional WAE-MMD: condition in encoder and decoder, standard normal prior."""

    config_class = CWAEConfig
    config: CWAEConfig

    def encode(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Log-space images (B, 44, 44) and conditions (B, 9) -> codes (B, latent_dim)."""
        return self.encoder(images, conditions)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        codes = self.encode(batch.images, batch.conditions)
        losses = self.reconstruction_losses(batch.images, self.decode(codes, batch.conditions))
        prior = batch.randn(*codes.shape)
        losses["mmd"] = mmd_inverse_multiquadric(codes, prior, c.mmd_scales)
        losses["loss"] = losses.pop("weighted") + c.mmd_weight * losses["mmd"]
        return losses
