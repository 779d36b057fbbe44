"""What the conditional autoencoder baselines (cVAE, cWAE) share: the backbone part of their
config, the encoder q(x, y) and decoder p(z, y) built from it, the reconstruction loss of
the e2e Sinkhorn autoencoder, and generation by decoding prior noise with the condition.

The backbone and reconstruction defaults equal those of the e2e Sinkhorn AE
(configs/zdc/e2e_sae.yaml): MSE + Laplacian pyramid L1 + the error of the 5 channel sums
in photon counts. Table 4.3.1 then compares regularisers of the latent space, not network
sizes or reconstruction losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from calosim.models.base import DataShapeConfig, GenerativeModel
from calosim.nn.conditioning import ConditionalImageDecoder, ConditionalImageEncoder
from calosim.nn.losses import channel_error, laplacian_pyramid_l1

Activation = Literal["relu", "leaky_relu", "elu", "silu", "tanh"]
Backbone = Literal["mlp", "conv"]


def check_backbone(
    role: str, kind: str, hidden: Sequence[int], channels: Sequence[int], *, upsamples: bool
) -> None:
    """ValueError unless widths are positive and a conv backbone can be built.

    ``upsamples``: the backbone makes images (44 = 11 * 2 * 2 allows at most two
    transposed convolutions) rather than reading them.
    """
    if any(width < 1 for width in (*hidden, *channels)):
        raise ValueError(f"{role} layer widths and channel counts must be positive")
    if kind != "conv":
        return
    if upsamples and not 1 <= len(channels) <= 2:
        raise ValueError(f"a conv {role} needs 1 or 2 {role}_channels (44 = 11 * 2 * 2)")
    if not upsamples and (not channels or not hidden):
        raise ValueError(f"a conv {role} needs {role}_channels and at least one {role}_hidden")


@dataclass
class ConditionalAEConfig(DataShapeConfig):
    """Backbone and reconstruction settings shared by the conditional autoencoders."""

    latent_dim: int = 10
    encoder: Backbone = "mlp"
    encoder_hidden: tuple[int, ...] = (512, 128)
    encoder_channels: tuple[int, ...] = (16, 32, 32)
    decoder: Backbone = "mlp"
    decoder_hidden: tuple[int, ...] = (128, 384)
    decoder_channels: tuple[int, ...] = (16, 8)
    activation: Activation = "relu"
    reconstruction_weight: float = 1.0
    laplacian_weight: float = 1.0
    laplacian_levels: int = 3
    channel_weight: float = 1.0
    channel_loss: Literal["l1", "log_mse"] = "l1"
    channel_scale: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_zn(channel_weight=self.channel_weight)
        for name in ("latent_dim", "laplacian_levels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("reconstruction_weight", "laplacian_weight", "channel_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.channel_scale <= 0:
            raise ValueError(f"channel_scale must be positive, got {self.channel_scale}")
        check_backbone("encoder", self.encoder, self.encoder_hidden, self.encoder_channels,
                       upsamples=False)
        check_backbone("decoder", self.decoder, self.decoder_hidden, self.decoder_channels,
                       upsamples=True)


class ConditionalAutoencoder(GenerativeModel):
    """Encoder q(x, y) -> ``encoder_outputs`` numbers per latent dimension, decoder
    p(z, y) -> log-space image; generation decodes standard normal noise z with y."""

    config: ConditionalAEConfig
    encoder_outputs: int = 1

    def __init__(self, config: ConditionalAEConfig) -> None:
        super().__init__(config)
        c = config
        # as in the e2e Sinkhorn AE: a conv encoder with "relu" uses leaky ReLU
        conv_relu = c.encoder == "conv" and c.activation == "relu"
        encoder_activation = "leaky_relu" if conv_relu else c.activation
        self.encoder = ConditionalImageEncoder(
            c.image_shape, c.condition_dim, c.encoder_hidden,
            self.encoder_outputs * c.latent_dim,
            kind=c.encoder, channels=c.encoder_channels, activation_name=encoder_activation,
            batch_norm=c.encoder == "conv",
        )
        self.decoder = ConditionalImageDecoder(
            c.latent_dim, c.condition_dim, c.decoder_hidden, c.image_shape,
            kind=c.decoder, channels=c.decoder_channels, activation_name=c.activation,
        )

    @property
    def noise_shape(self) -> tuple[int, ...]:
        # the prior of the latent space is the generator's noise
        return (self.config.latent_dim,)

    def decode(self, codes: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, latent_dim) and conditions (B, 9) -> log-space images."""
        return self.decoder(codes, conditions)

    def generate(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.decode(noise, conditions)

    def reconstruction_losses(
        self, images: torch.Tensor, reconstruction: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """MSE, Laplacian pyramid L1 (thesis eq. 4.1) and channel-sum error, as in the e2e
        Sinkhorn AE, and their weighted sum "weighted"."""
        c = self.config
        losses = {
            "mse": F.mse_loss(reconstruction, images),
            "laplacian": laplacian_pyramid_l1(images, reconstruction, c.laplacian_levels),
        }
        # only ZN responses have channel sums; other images leave the term out
        losses["channels"] = (
            channel_error(images, reconstruction, c.channel_loss, c.channel_scale)
            if c.is_zn else images.new_zeros(())
        )
        losses["weighted"] = c.reconstruction_weight * (
            losses["mse"] + c.laplacian_weight * losses["laplacian"]
            + c.channel_weight * losses["channels"]
        )
        return losses
