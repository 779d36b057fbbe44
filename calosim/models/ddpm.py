"""Conditional pixel-space DDPM of ZN responses (thesis sec. 2.3; Ho et al. 2020).

Images live in log(1 + counts) space; the model maps them linearly to [-1, 1]
(x = 2 y / log_max - 1, so an empty pixel is -1) and pads them from 44 x 44 to 48 x 48
(``padded_size``) with empty pixels, so a U-Net can halve the resolution twice or three
times. Other images (the image benchmarks: ``image_shape``, ``condition_dim``, pixels
in [0, 1] with log_max 1) go through the same steps. A U-Net
predicts the noise (or the velocity) from x_t, the step embedding and an embedding of
the 9 standardised particle attributes. With ``condition_dropout`` > 0 some rows train
without their particle, and ``guidance_scale`` applies classifier-free guidance.

Noise: ``generate`` takes x_T itself (noise_shape (1, 48, 48)); stochastic samplers
(ancestral, DDIM with eta > 0) draw their per-step noise from a counter-based generator
keyed by each row's x_T (calosim.diffusion.noise), so every response is a deterministic
function of its own noise row and particle, however the rows are batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from calosim.diffusion.base import DenoiseFunction
from calosim.diffusion.config import DiffusionConfig, SamplingSettings
from calosim.diffusion.prediction import diffusion_loss
from calosim.diffusion.schedules import TimestepWeighting
from calosim.models.base import Batch, DataShapeConfig, GenerativeModel
from calosim.models.registry import register
from calosim.nn.unet import ConditionalUNet

PADDED_SIZE = 48  # 44 x 44 ZN responses padded so a U-Net can halve them


def check_unet_shape(channels: tuple[int, ...], attention: tuple[bool, ...], prefix: str = "",
                     size: int = PADDED_SIZE):
    """ValueError unless a U-Net of these levels fits ``size`` x ``size`` images."""
    if not channels or min(channels) < 1:
        raise ValueError(f"{prefix}channels must be a non-empty list of positive widths")
    if len(attention) != len(channels):
        raise ValueError(f"{prefix}attention needs one flag per level ({len(channels)}), "
                         f"got {len(attention)}")
    if size % 2 ** (len(channels) - 1):
        raise ValueError(f"{prefix}channels: {len(channels)} levels do not fit "
                         f"{size} x {size} images")


@dataclass
class DDPMConfig(DataShapeConfig, DiffusionConfig):
    """Hyper-parameters of the conditional pixel-space DDPM (see DiffusionConfig for the
    schedule, sampler and guidance settings)."""

    channels: tuple[int, ...] = (32, 64, 128)
    blocks: int = 1
    attention: tuple[bool, ...] = (False, False, True)
    heads: int = 4
    dropout: float = 0.0
    log_max: float = 6.5
    clip_denoised: bool = True
    padded_size: int = PADDED_SIZE

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.padded_size < max(self.image_shape):
            raise ValueError(f"padded_size ({self.padded_size}) must be at least the image "
                             f"side {max(self.image_shape)}")
        if self.condition_dim == 0 and self.condition_dropout > 0:
            raise ValueError("condition_dropout needs conditions (condition_dim > 0)")
        check_unet_shape(self.channels, self.attention, size=self.padded_size)
        if self.blocks < 1:
            raise ValueError(f"blocks must be at least 1, got {self.blocks}")
        if self.heads < 1 or any(c % self.heads for c, a in zip(self.channels, self.attention,
                                                                strict=True) if a):
            raise ValueError(f"heads ({self.heads}) must divide the channels of attention levels")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.log_max <= 0:
            raise ValueError(f"log_max must be positive, got {self.log_max}")


@register("ddpm")
class ConditionalDDPM(SamplingSettings, GenerativeModel):
    """Conditional DDPM on padded log-space ZN images."""

    config_class = DDPMConfig
    config: DDPMConfig
    # Joint diffusion keeps the particle out of the encoder; the plain DDPM does not.
    condition_in_encoder: ClassVar[bool] = True

    def __init__(self, config: DDPMConfig) -> None:
        super().__init__(config)
        self.schedule = config.build_schedule()
        self.sampler = config.build_sampler(self.schedule, self.sampler_clip())
        self.network = ConditionalUNet(
            config.channels, blocks=config.blocks, attention=config.attention,
            dropout=config.dropout, heads=config.heads, n_attributes=config.condition_dim,
            condition_in_encoder=self.condition_in_encoder,
        )

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (1, self.config.padded_size, self.config.padded_size)

    def _padding(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) pixels that pad an image to padded_size."""
        (height, width), size = self.config.image_shape, self.config.padded_size
        top, left = (size - height) // 2, (size - width) // 2
        return left, size - width - left, top, size - height - top

    def sampler_clip(self) -> tuple[float, float] | None:
        return (-1.0, 1.0) if self.config.clip_denoised else None

    # ------------------------------------------------------------------ image space

    def to_model_space(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 44, 44) log(1 + counts) -> (B, 1, 48, 48) in [-1, 1], padded with -1."""
        scaled = 2.0 * images / self.config.log_max - 1.0
        return F.pad(scaled[:, None], self._padding(), value=-1.0)

    def from_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``to_model_space``: crop, rescale, no negative log counts."""
        left, _, top, _ = self._padding()
        height, width = self.config.image_shape
        cropped = x[:, 0, top : top + height, left : left + width]
        return ((cropped + 1.0) * (0.5 * self.config.log_max)).clamp(min=0.0)

    # --------------------------------------------------------------------- training

    def training_range(self) -> tuple[int, int]:
        """The diffusion steps the network is trained on (all of them here)."""
        return 1, self.schedule.n_steps

    def timestep_weighting(self) -> TimestepWeighting:
        """How training steps are drawn within ``training_range``."""
        return "uniform"

    def condition_drop(self, batch: Batch) -> torch.Tensor | None:
        """Rows trained with the null particle (classifier-free guidance), or None."""
        if self.config.condition_dropout == 0:
            return None
        return batch.rand(batch.conditions.shape[0]) < self.config.condition_dropout

    def diffusion_terms(
        self, batch: Batch, x0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The diffusion loss (mean over the batch), the steps drawn and the encoder
        features of x_t (which joint diffusion reuses for its noisy classifier)."""
        c = self.config
        n = x0.shape[0]
        low, high = self.training_range()
        t = self.schedule.timesteps_from_uniform(batch.rand(n), low, high,
                                                 self.timestep_weighting())
        noise = batch.randn(*x0.shape)
        x_t = self.schedule.q_sample(x0, t, noise)
        encoder_emb, decoder_emb = self.network.embed(t, batch.conditions,
                                                      self.condition_drop(batch))
        features = self.network.encode(x_t, encoder_emb)
        output = self.network.decode(features, decoder_emb)
        loss = diffusion_loss(c.prediction, c.objective, output, x0, x_t, noise, t, self.schedule)
        return loss.mean(), t, features

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss, _, _ = self.diffusion_terms(batch, self.to_model_space(batch.images))
        return {"loss": loss, "diffusion": loss}

    # ------------------------------------------------------------------- generation

    def network_output(
        self, x: torch.Tensor, t: int, conditions: torch.Tensor
    ) -> torch.Tensor:
        """The network's output at step t, with classifier-free guidance if configured."""
        steps = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        encoder_emb, decoder_emb = self.network.embed(steps, conditions)
        features = self.edit_features(self.network.encode(x, encoder_emb), t, conditions)
        output = self.network.decode(features, decoder_emb)
        w = self.config.guidance_scale
        if w == 0:
            return output
        drop = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        encoder_null, decoder_null = self.network.embed(steps, conditions, drop)
        if self.condition_in_encoder:
            features = self.edit_features(self.network.encode(x, encoder_null), t, conditions)
        unconditional = self.network.decode(features, decoder_null)
        return output + w * (output - unconditional)

    def edit_features(
        self, features: list[torch.Tensor], t: int, conditions: torch.Tensor
    ) -> list[torch.Tensor]:
        """Hook between encoder and decoder at sampling time (joint diffusion optimises the
        representation here); unchanged by default."""
        return features

    def denoise_function(self, conditions: torch.Tensor) -> DenoiseFunction:
        """(x_t, t) -> network output for these particles, for the samplers."""
        return lambda x, t: self.network_output(x, t, conditions)

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        x_start = noise.reshape(-1, *self.noise_shape)
        x0 = self.sampler.sample(self.denoise_function(conditions), x_start)
        return self.from_model_space(x0)
