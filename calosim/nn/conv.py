"""Convolutional image encoder and decoder (strided convolutions, factor 2 per stage)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from calosim.nn.mlp import MLP, activation


def _downsampled_size(size: int, stages: int) -> int:
    # kernel 4, stride 2, padding 1 halves a size, rounding down
    for _ in range(stages):
        size = (size + 2 - 4) // 2 + 1
    return size


class ConvEncoder(nn.Module):
    """(N, H, W) images -> (N, out_features): strided convolutions, then an MLP."""

    def __init__(
        self, image_shape: tuple[int, int], channels: Sequence[int], hidden: Sequence[int],
        out_features: int, *, activation_name: str = "leaky_relu", batch_norm: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for width in channels:
            layers.append(
                nn.Conv2d(in_channels, width, 4, stride=2, padding=1, bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(activation(activation_name))
            in_channels = width
        self.features = nn.Sequential(*layers)
        height = _downsampled_size(image_shape[0], len(channels))
        width_ = _downsampled_size(image_shape[1], len(channels))
        self.head = MLP(in_channels * height * width_, hidden, out_features,
                        activation_name=activation_name)

    @property
    def last_linear(self) -> nn.Linear:
        return self.head.last_linear

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images.unsqueeze(1)).flatten(1))


class ConvDecoder(nn.Module):
    """(N, in_features) -> (N, H, W): an MLP trunk to a coarse feature map, then
    transposed convolutions that double the resolution per stage.

    The trunk does the conditional work cheaply (dense matrix products are the fastest
    operation on a CPU); the transposed convolutions add local, translation-equivariant
    shower shapes at full resolution for few operations per pixel.
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int], channels: Sequence[int],
        image_shape: tuple[int, int], *, activation_name: str = "relu",
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("a convolutional decoder needs at least one channel width")
        factor = 2 ** len(channels)
        if image_shape[0] % factor or image_shape[1] % factor:
            raise ValueError(
                f"image shape {image_shape} is not divisible by 2**{len(channels)}"
                " (one factor 2 per transposed convolution)"
            )
        self.coarse_shape = (channels[0], image_shape[0] // factor, image_shape[1] // factor)
        n_coarse = channels[0] * self.coarse_shape[1] * self.coarse_shape[2]
        self.trunk = MLP(in_features, hidden, n_coarse, activation_name=activation_name,
                         final_activation=activation_name)
        layers: list[nn.Module] = []
        widths = [*channels, 1]
        for i, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1))
            if i < len(channels) - 1:
                layers.append(activation(activation_name))
        self.upsample = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        coarse = self.trunk(codes).view(-1, *self.coarse_shape)
        return self.upsample(coarse).squeeze(1)
