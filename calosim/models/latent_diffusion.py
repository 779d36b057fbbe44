"""Latent diffusion: a small diffusion model in a trained autoencoder's latent space.

The latent space, the frozen autoencoder, the gate and the generated channel sums are
those of ``calosim.models.latent_space``. A residual MLP learns to denoise the
standardised latents of the training responses, conditioned on the particle; generation
runs a few solver steps in the latent space (10 DPM-Solver++ steps in the committed
config) and decodes once.

Files written before the options were added read with ``use_gate`` and
``diffuse_totals`` off: every response, empty or not, is a code, and the decoder alone
makes the channel sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from calosim.diffusion.config import DiffusionConfig, SamplingSettings
from calosim.diffusion.prediction import Prediction, diffusion_loss
from calosim.models.base import Batch
from calosim.models.latent_space import (
    LatentSpaceConfig,
    LatentSpaceModel,
    ResidualMLPDenoiser,
    read_autoencoder_file,
)
from calosim.models.registry import register

__all__ = ["LatentDiffusion", "LatentDiffusionConfig", "ResidualMLPDenoiser",
           "read_autoencoder_file"]


@dataclass
class LatentDiffusionConfig(LatentSpaceConfig, DiffusionConfig):
    """Hyper-parameters of latent diffusion (DiffusionConfig: schedule and sampler)."""

    prediction: Prediction = "v"
    sampling_steps: int = 10

    file_defaults: ClassVar[dict[str, Any]] = {"use_gate": False, "diffuse_totals": False}


@register("latent_diffusion")
class LatentDiffusion(SamplingSettings, LatentSpaceModel):
    """Conditional diffusion on frozen autoencoder codes, decoded to responses."""

    config_class = LatentDiffusionConfig
    config: LatentDiffusionConfig

    def __init__(self, config: LatentDiffusionConfig) -> None:
        super().__init__(config)
        self.schedule = config.build_schedule()
        self.sampler = config.build_sampler(self.schedule)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        learnt = self.training_latents(batch)
        if learnt is None:
            return {"loss": batch.images.new_zeros((), requires_grad=True)}
        z0, conditions = learnt
        n = z0.shape[0]
        t = self.schedule.timesteps_from_uniform(batch.rand(n))
        noise = batch.randn(n, self.data_dim)
        z_t = self.schedule.q_sample(z0, t, noise)
        drop = batch.rand(n) < c.condition_dropout if c.condition_dropout > 0 else None
        emb = self.time_embedding(t) + self.condition_embedding(conditions, drop)
        output = self.denoiser(z_t, emb)
        loss = diffusion_loss(c.prediction, c.objective, output, z0, z_t, noise, t,
                              self.schedule).mean()
        return {"loss": loss}

    def sample_latents(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        w = self.config.guidance_scale
        particle = self.denoiser.embedding_terms(self.condition_embedding(conditions), bias=False)
        if w > 0:
            null = self.denoiser.embedding_terms(
                self.condition_embedding.null_embedding(1), bias=False)

        def denoise(z: torch.Tensor, t: int) -> torch.Tensor:
            step = torch.full((1,), t, dtype=torch.long, device=z.device)
            time = self.denoiser.embedding_terms(self.time_embedding(step))
            output = self.denoiser(z, terms=[a + b for a, b in zip(time, particle, strict=True)])
            if w == 0:
                return output
            unconditional = self.denoiser(z, terms=[a + b for a, b in zip(time, null,
                                                                           strict=True)])
            return output + w * (output - unconditional)

        return self.sampler.sample(denoise, noise)
