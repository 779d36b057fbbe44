"""A ZN decoder that predicts the 5 channel sums and, separately, how each channel's light
spreads over its fibres.

A decoder trained by a per-pixel loss in log(1 + x) space gets the shapes right but
lets the channel sums drift by a few per cent (measured on the embedded Monte Carlo:
reconstructed common-PMT sums 4 % high, the top 0.1 % of tower sums 5 % low), and the
channel sums are exactly what the ZN metrics read. Here the sums are outputs of their
own: the image of channel c is S_c * softmax(a)_p over that channel's pixels p, so its
photons add up to S_c by construction, and the channel term of the loss trains S_c
directly, without competing with the pixel term. (The factorisation into a total and a
normalised shape is the one fast calorimeter simulations use per layer, e.g. CaloFlow.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from calosim.metrics.zdc import N_CHANNELS, channel_mask
from calosim.nn.mlp import MLP


class ChannelTotalsDecoder(nn.Module):
    """(N, in_features) -> (N, 44, 44) log(1 + counts) images whose channel sums are
    predicted explicitly. ``parity`` only fixes which pixels share a softmax; any
    partition represents every image, so it need not match the metric's parity.
    ``initial_total``: the channel sum (photons) the untrained decoder predicts."""

    def __init__(
        self, in_features: int, hidden: Sequence[int], image_shape: tuple[int, int],
        *, activation_name: str = "relu", parity: str = "odd", initial_total: float = 1.0,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        pixels = image_shape[0] * image_shape[1]
        # one output per pixel (its logit within its channel) and one per channel total
        self.mlp = MLP(in_features, hidden, pixels + N_CHANNELS, activation_name=activation_name)
        if initial_total <= 0:
            raise ValueError(f"initial_total must be positive, got {initial_total}")
        # start every total near ``initial_total`` photons (softplus(log S) = log(1 + S)):
        # from S = 1 the totals of ZN responses take a few epochs to reach their scale
        with torch.no_grad():
            self.mlp.last_linear.bias[-N_CHANNELS:] = math.log(initial_total)
        channel_of_pixel = torch.as_tensor(channel_mask(parity).argmax(axis=1))
        order = torch.argsort(channel_of_pixel, stable=True)
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("inverse_order", torch.argsort(order), persistent=False)
        self.register_buffer("channel_of_sorted", channel_of_pixel[order], persistent=False)
        self.group_sizes = torch.bincount(channel_of_pixel, minlength=N_CHANNELS).tolist()

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        outputs = self.mlp(codes)
        logits, log_totals = outputs[:, : -N_CHANNELS], outputs[:, -N_CHANNELS:]
        # softplus keeps log(1 + S_c) >= 0 with a gradient everywhere
        totals = F.softplus(log_totals).expm1()
        grouped = logits[:, self.order].split(self.group_sizes, dim=1)
        shares = torch.cat([group.softmax(dim=1) for group in grouped], dim=1)
        counts = shares * totals[:, self.channel_of_sorted]
        return counts[:, self.inverse_order].log1p().view(-1, *self.image_shape)
