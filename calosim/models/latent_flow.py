"""Latent flow matching: a conditional rectified flow in a trained autoencoder's latent space.

The latent space, frozen autoencoder, gate and generated channel sums are those of
``calosim.models.latent_space``. The flow follows Lipman et al. 2023, "Flow matching for
generative modeling", and Liu et al. 2023, "Flow straight and fast: learning to generate
and transfer data with rectified flow": with z_0 a standardised latent and eps standard
normal, z_t = (1 - t) z_0 + t eps and a residual MLP v(z_t, t, y) regresses the
velocity eps - z_0, conditioned on the particle y. Generation integrates dz/dt = v from
z_1 = eps to t = 0 with a few steps of an ODE solver (``calosim.flow``) and decodes once.

The straight-line paths make few steps accurate, and the whole generation is one
feed-forward graph for a fixed number of steps, so the model exports to ONNX.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from calosim.flow import build_solver
from calosim.models.base import Batch
from calosim.models.latent_space import LatentSpaceConfig, LatentSpaceModel
from calosim.models.registry import register

# t in [0, 1] scaled to the range of diffusion steps the sinusoidal embedding resolves
TIME_SCALE = 1000.0
SAMPLING_SETTINGS = ("solver", "sampling_steps")


@dataclass
class LatentFlowConfig(LatentSpaceConfig):
    """Hyper-parameters of latent flow matching.

    ``time_sampling``: how training draws t, "uniform" or "logit_normal" (sigmoid of a
    standard normal: more weight mid-path, as in Esser et al. 2024, "Scaling rectified
    flow transformers for high-resolution image synthesis")."""

    solver: Literal["euler", "heun"] = "heun"  # the keys of calosim.flow.SOLVERS
    sampling_steps: int = 4
    time_sampling: Literal["uniform", "logit_normal"] = "uniform"

    def __post_init__(self) -> None:
        if self.sampling_steps < 1:
            raise ValueError(f"sampling_steps must be at least 1, got {self.sampling_steps}")
        super().__post_init__()


@register("latent_flow")
class LatentFlow(LatentSpaceModel):
    """Conditional flow matching on frozen autoencoder codes, decoded to responses."""

    config_class = LatentFlowConfig
    config: LatentFlowConfig

    def __init__(self, config: LatentFlowConfig) -> None:
        super().__init__(config)
        self.solver = build_solver(config.solver, config.sampling_steps)

    def set_sampling(self, **changes: Any) -> None:
        """Replace ``solver`` and/or ``sampling_steps``; a model file written afterwards
        samples the new way."""
        unknown = sorted(set(changes) - set(SAMPLING_SETTINGS))
        if unknown:
            raise ValueError(f"{unknown[0]} is not a sampling setting "
                             f"(those are: {', '.join(SAMPLING_SETTINGS)})")
        self.config = dataclasses.replace(self.config, **changes)
        self.solver = build_solver(self.config.solver, self.config.sampling_steps)

    def _times(self, batch: Batch, n: int) -> torch.Tensor:
        if self.config.time_sampling == "logit_normal":
            return torch.sigmoid(batch.randn(n))
        return batch.rand(n)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        learnt = self.training_latents(batch)
        if learnt is None:
            return {"loss": batch.images.new_zeros((), requires_grad=True)}
        z0, conditions = learnt
        n = z0.shape[0]
        t = self._times(batch, n)
        noise = batch.randn(n, self.data_dim)
        z_t = (1.0 - t[:, None]) * z0 + t[:, None] * noise
        emb = self.time_embedding(t * TIME_SCALE) + self.condition_embedding(conditions)
        loss = F.mse_loss(self.denoiser(z_t, emb), noise - z0)
        return {"loss": loss}

    def sample_latents(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        particle = self.denoiser.embedding_terms(self.condition_embedding(conditions), bias=False)

        def velocity(z: torch.Tensor, t: float) -> torch.Tensor:
            step = torch.full((1,), t * TIME_SCALE, dtype=z.dtype, device=z.device)
            time = self.denoiser.embedding_terms(self.time_embedding(step))
            return self.denoiser(z, terms=[a + b for a, b in zip(time, particle, strict=True)])

        return self.solver.sample(velocity, noise)
