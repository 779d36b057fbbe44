"""Fully connected building blocks shared by the learned models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of ACTIVATIONS)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})") from None


class MLP(nn.Sequential):
    """Linear layers with an activation (and optional batch norm) between them.

    ``hidden`` lists the widths of the hidden layers; the output layer is linear
    unless ``final_activation`` is given.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        activation_name: str = "relu",
        batch_norm: bool = False,
        final_activation: str | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(activation(activation_name))
            width = size
        layers.append(nn.Linear(width, out_features))
        if final_activation is not None:
            layers.append(activation(final_activation))
        super().__init__(*layers)

    @property
    def last_linear(self) -> nn.Linear:
        """The output layer (its weights get the L2 penalty some models apply)."""
        return next(m for m in reversed(self) if isinstance(m, nn.Linear))


class ImageMLPEncoder(nn.Module):
    """(N, H, W) images -> (N, out_features) through an MLP on the flattened pixels,
    optionally joined by ``extra_features`` summary features per image."""

    def __init__(
        self, image_shape: tuple[int, int], hidden: Sequence[int], out_features: int,
        *, activation_name: str = "relu", batch_norm: bool = False, extra_features: int = 0,
    ) -> None:
        super().__init__()
        self.mlp = MLP(
            image_shape[0] * image_shape[1] + extra_features, hidden, out_features,
            activation_name=activation_name, batch_norm=batch_norm,
        )

    @property
    def last_linear(self) -> nn.Linear:
        return self.mlp.last_linear

    def forward(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        features = images.flatten(1)
        if extra is not None:
            features = torch.cat([features, extra], dim=1)
        return self.mlp(features)


class ImageMLPDecoder(nn.Module):
    """(N, in_features) -> (N, H, W) images; the output layer has one unit per pixel."""

    def __init__(
        self, in_features: int, hidden: Sequence[int], image_shape: tuple[int, int],
        *, activation_name: str = "relu",
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.mlp = MLP(
            in_features, hidden, image_shape[0] * image_shape[1], activation_name=activation_name
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.mlp(codes).view(-1, *self.image_shape)
