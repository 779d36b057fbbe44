"""Conditional image encoders and decoders: the backbones of calosim.nn with the standardised
particle attributes joined in, for models whose encoder or decoder sees the condition
(conditional VAE and WAE, the GAN's generator and critic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from calosim.nn.conv import ConvDecoder, ConvEncoder
from calosim.nn.mlp import MLP, ImageMLPDecoder, activation

BackboneKind = Literal["mlp", "conv"]


class ConditionalImageEncoder(nn.Module):
    """(images (N, H, W), conditions (N, C)) -> (N, out_features).

    ``mlp``: one MLP over the flattened pixels joined with the conditions (as in the
    conditional VAE of Sohn et al. 2015). ``conv``: strided convolutions and a first dense
    layer of width ``hidden[0]`` see the image alone; the conditions join after it, so the
    remaining dense layers (``hidden[1:]``) relate shower shape to the particle.
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        n_conditions: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        kind: BackboneKind = "mlp",
        channels: Sequence[int] = (),
        activation_name: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.kind = kind
        if kind == "mlp":
            n_pixels = image_shape[0] * image_shape[1]
            self.image_features: nn.Module | None = None
            self.head = MLP(n_pixels + n_conditions, hidden, out_features,
                            activation_name=activation_name, batch_norm=batch_norm)
        elif kind == "conv":
            if not hidden or not channels:
                raise ValueError("a conv conditional encoder needs channels and a hidden layer")
            self.image_features = nn.Sequential(
                ConvEncoder(image_shape, channels, (), hidden[0],
                            activation_name=activation_name, batch_norm=batch_norm),
                activation(activation_name),
            )
            self.head = MLP(hidden[0] + n_conditions, hidden[1:], out_features,
                            activation_name=activation_name)
        else:
            raise ValueError(f"unknown encoder kind {kind!r} (known: mlp, conv)")

    @property
    def last_linear(self) -> nn.Linear:
        """The output layer."""
        return self.head.last_linear

    def forward(self, images: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        if self.image_features is None:
            features = images.flatten(1)
        else:
            features = self.image_features(images)
        return self.head(torch.cat([features, conditions], dim=1))


class ConditionalImageDecoder(nn.Module):
    """(codes (N, D), conditions (N, C)) -> (N, H, W) images: the codes joined with the
    conditions go through an ImageMLPDecoder (``mlp``) or a ConvDecoder (``conv``)."""

    def __init__(
        self,
        in_features: int,
        n_conditions: int,
        hidden: Sequence[int],
        image_shape: tuple[int, int],
        *,
        kind: BackboneKind = "mlp",
        channels: Sequence[int] = (),
        activation_name: str = "relu",
    ) -> None:
        super().__init__()
        joined = in_features + n_conditions
        if kind == "mlp":
            self.decoder: nn.Module = ImageMLPDecoder(joined, hidden, image_shape,
                                                      activation_name=activation_name)
        elif kind == "conv":
            self.decoder = ConvDecoder(joined, hidden, channels, image_shape,
                                       activation_name=activation_name)
        else:
            raise ValueError(f"unknown decoder kind {kind!r} (known: mlp, conv)")

    def forward(self, codes: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([codes, conditions], dim=1))
