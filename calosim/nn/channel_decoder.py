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
from calosim.nn.losses import channel_shape_divergence
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
        mask = torch.tensor(channel_mask(parity), dtype=torch.float32)
        self.register_buffer("mask", mask, persistent=False)  # (pixels, 5)

    def _logits_and_totals(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.mlp(codes)
        logits, log_totals = outputs[:, : -N_CHANNELS], outputs[:, -N_CHANNELS:]
        # softplus keeps log(1 + S_c) >= 0 with a gradient everywhere
        return logits, F.softplus(log_totals).expm1()

    def _log_shares(self, logits: torch.Tensor) -> torch.Tensor:
        shifted = logits - logits.amax(dim=1, keepdim=True)
        mask = self.mask.to(shifted.dtype)
        per_channel = (shifted.exp() @ mask).clamp(min=torch.finfo(shifted.dtype).tiny)
        return shifted - per_channel.log() @ mask.T

    def shares_and_totals(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1936) log of each pixel's share of its channel's light, and (N, 5) channel
        sums: the training path, for a likelihood of where the photons fall."""
        logits, totals = self._logits_and_totals(codes)
        return self._log_shares(logits), totals

    def fit_shapes(
        self, codes: torch.Tensor, counts: torch.Tensor, *, steps: int, batch_size: int,
        learning_rate: float, generator: torch.Generator,
    ) -> float:
        """Refits the pixel-logit rows of the output layer alone, everything else frozen,
        to the photons' likelihood (calosim.nn.losses.channel_shape_divergence) of
        ``counts`` (N, 44, 44) given their ``codes``. The totals are untouched, and on
        fixed features the problem is a multinomial logistic regression, which is convex.
        Returns the mean loss of the last tenth of the steps."""
        last = self.mlp.last_linear
        pixels = slice(0, last.out_features - N_CHANNELS)
        with torch.no_grad():
            features = codes
            for layer in list(self.mlp)[:-1]:
                features = layer(features)
        weight = last.weight[pixels].detach().clone().requires_grad_(True)
        bias = last.bias[pixels].detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([weight, bias], lr=learning_rate)
        flat = counts.reshape(len(counts), -1)
        tail = max(steps // 10, 1)
        reported = 0.0
        for step in range(steps):
            rows = torch.randint(len(features), (batch_size,), generator=generator)
            log_shares = self._log_shares(F.linear(features[rows], weight, bias))
            loss = channel_shape_divergence(flat[rows], log_shares, self.mask)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if step >= steps - tail:
                reported += float(loss.detach()) / tail
        with torch.no_grad():
            last.weight[pixels] = weight
            last.bias[pixels] = bias
        return reported

    def counts(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, 44, 44) photon counts: the generation path, without the log round trip."""
        logits, totals = self._logits_and_totals(codes)
        # A softmax per channel, in image order: the exponentials are shifted by the row's
        # maximum (not the channel's: channels interleave), summed per channel by the 0/1
        # mask, and each pixel gets its channel's total over that sum. A common shift of
        # one channel's logits changes nothing, so no gradient pulls channels apart; only
        # a channel ~87 nats below another would underflow (then it is dark).
        shifted = (logits - logits.amax(dim=1, keepdim=True)).exp_()
        mask = self.mask.to(shifted.dtype)
        per_photon = totals / (shifted @ mask).clamp(min=torch.finfo(shifted.dtype).tiny)
        return (shifted * (per_photon @ mask.T)).view(-1, *self.image_shape)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.counts(codes).log1p()
