"""DAED: a denoising autoencoder with a diffusion model (thesis ch. 5; Deja et al. 2022).

A DDGM is split at a switch step s into two separately parameterised parts:
- the generator, a diffusion model trained only on steps s < t <= T, produces x_s;
- the denoiser, a denoising autoencoder f_phi, maps x_s ~ q(x_s | x_0) to x_0 in one
  pass, trained with ln p(x_0 | f_phi(x_s)) = -|x_0 - f_phi(x_s)|^2 + const (eq. 5.1).
The objective (eq. 5.5) is the sum of the two parts, with disjoint parameters.

The switch is given as beta_1, the noise variance of the DAE's corruption
q(x_1 | x_0) = N(sqrt(1 - beta_1) x_0, beta_1 I): s is the last step of the schedule
with 1 - alpha_bar_s <= beta_1; or as a log signal-to-noise ratio (eq. 5.2 per unit
signal): s is the last step whose log SNR is >= the value. The DAE is corrupted with the
schedule's own alpha_bar_s, so it sees exactly what the generator hands over. The
generator's steps are drawn with P(t) proportional to beta_t (the weighted sampler of
thesis sec. 5.9.5) unless ``timestep_weighting`` is "uniform".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calosim.data.schema import N_ATTRIBUTES
from calosim.diffusion.schedules import TimestepWeighting
from calosim.models.base import Batch
from calosim.models.ddpm import ConditionalDDPM, DDPMConfig, check_unet_shape
from calosim.models.registry import register
from calosim.nn.unet import ConditionalUNet


@dataclass
class DAEDConfig(DDPMConfig):
    """Hyper-parameters of DAED: the DDPM's plus the switch point and the DAE network."""

    switch_beta: float | None = 0.1
    switch_log_snr: float | None = None
    timestep_weighting: TimestepWeighting = "beta"
    dae_channels: tuple[int, ...] = (32, 64, 128)
    dae_blocks: int = 1
    dae_attention: tuple[bool, ...] = (False, False, True)
    dae_conditional: bool = False
    dae_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.switch_beta is None) == (self.switch_log_snr is None):
            raise ValueError("give exactly one of switch_beta and switch_log_snr")
        if self.switch_beta is not None and not 0 < self.switch_beta < 1:
            raise ValueError(f"switch_beta must lie in (0, 1), got {self.switch_beta}")
        check_unet_shape(self.dae_channels, self.dae_attention, "dae_")
        if self.dae_blocks < 1:
            raise ValueError(f"dae_blocks must be at least 1, got {self.dae_blocks}")
        if self.dae_weight <= 0:
            raise ValueError(f"dae_weight must be positive, got {self.dae_weight}")
        if any(c % self.heads for c, a in zip(self.dae_channels, self.dae_attention,
                                              strict=True) if a):
            raise ValueError(f"heads ({self.heads}) must divide the dae_channels of attention "
                             "levels")
        if self.switch_step() >= self.diffusion_steps:
            raise ValueError(f"the switch point (step {self.switch_step()}) leaves none of the "
                             f"{self.diffusion_steps} diffusion steps; lower the switch noise")

    def switch_step(self) -> int:
        """The step s where the DAE takes over, from switch_beta or switch_log_snr."""
        schedule = self.build_schedule()
        if self.switch_beta is not None:
            return schedule.step_at_noise_level(self.switch_beta)
        return schedule.step_at_log_snr(float(self.switch_log_snr))


@register("daed")
class DAED(ConditionalDDPM):
    """Diffusion generator down to x_s, then a denoising autoencoder to x_0."""

    config_class = DAEDConfig
    config: DAEDConfig

    def __init__(self, config: DAEDConfig) -> None:
        super().__init__(config)
        self.switch_step = config.switch_step()
        self.denoiser = ConditionalUNet(
            config.dae_channels, blocks=config.dae_blocks, attention=config.dae_attention,
            dropout=config.dropout, heads=config.heads,
            n_attributes=N_ATTRIBUTES if config.dae_conditional else None,
        )

    def training_range(self) -> tuple[int, int]:
        return self.switch_step + 1, self.schedule.n_steps

    def timestep_weighting(self) -> TimestepWeighting:
        return self.config.timestep_weighting

    def denoise(self, x_switch: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """f_phi: x_s -> x_0 estimate (model space)."""
        steps = torch.full((x_switch.shape[0],), self.switch_step, dtype=torch.long,
                           device=x_switch.device)
        return self.denoiser(x_switch, steps, conditions if self.config.dae_conditional else None)

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        x0 = self.to_model_space(batch.images)
        diffusion, _, _ = self.diffusion_terms(batch, x0)
        signal = float(np.sqrt(self.schedule.alphas_cumprod[self.switch_step]))
        sigma = float(np.sqrt(1.0 - self.schedule.alphas_cumprod[self.switch_step]))
        x_switch = signal * x0 + sigma * batch.randn(*x0.shape)
        dae = (self.denoise(x_switch, batch.conditions) - x0).square().mean()
        return {"loss": diffusion + self.config.dae_weight * dae, "diffusion": diffusion,
                "dae": dae}

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        x_start = noise.reshape(-1, *self.noise_shape)
        x_switch = self.sampler.sample(self.denoise_function(conditions), x_start,
                                       end=self.switch_step)
        x0 = self.denoise(x_switch, conditions)
        if self.config.clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        return self.from_model_space(x0)
