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
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from calosim.metrics.zdc import N_CHANNELS, channel_mask
from calosim.nn.losses import channel_shape_divergence, channel_sum_error
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
        return outputs[:, : -N_CHANNELS], _totals(outputs[:, -N_CHANNELS:])

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

    def channel_sums(self, counts: torch.Tensor) -> torch.Tensor:
        """(N, 44, 44) photon counts -> (N, 5) sums over this decoder's channels."""
        return counts.reshape(len(counts), -1) @ self.mask.to(counts.dtype)

    def fit_shapes(
        self, codes: torch.Tensor, counts: torch.Tensor, *, steps: int, batch_size: int,
        learning_rate: float, generator: torch.Generator,
        time_is_up: Callable[[], bool] = lambda: False,
    ) -> float:
        """Refits the pixel-logit rows of the output layer alone, everything else frozen,
        to the photons' likelihood (calosim.nn.losses.channel_shape_divergence) of
        ``counts`` (N, 44, 44) given their ``codes``, on random batches. The totals are
        untouched, and on fixed features the problem is a multinomial logistic
        regression, which is convex. Returns the mean loss of the last tenth of the steps."""
        features = self._hidden_features(codes)
        flat = counts.reshape(len(counts), -1)

        def batch_loss(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            rows = torch.randint(len(features), (batch_size,), generator=generator)
            log_shares = self._log_shares(F.linear(features[rows], weight, bias))
            return channel_shape_divergence(flat[rows], log_shares, self.mask)

        pixels = slice(0, self.mlp.last_linear.out_features - N_CHANNELS)
        return self._refit_output_rows(pixels, batch_loss, steps, learning_rate, time_is_up)

    def fit_totals(
        self, codes: torch.Tensor, sums: torch.Tensor, *, steps: int, learning_rate: float,
        kind: str, scale: float, time_is_up: Callable[[], bool] = lambda: False,
    ) -> float:
        """Refits the 5 channel-total rows of the output layer alone, everything else
        frozen, to the channel sums (N, 5) of the responses (``channel_sums``) given their
        ``codes``, by the channel error (calosim.nn.losses.channel_sum_error ``kind``,
        ``scale``) over all N rows at every step. Trained with the pixel terms, the
        totals settle a few per cent off, differently in every run; alone, they are a
        small regression that full batches solve without step noise. The light's spread
        is untouched. Returns the mean loss of the last tenth of the steps."""
        features = self._hidden_features(codes)

        def full_batch_loss(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            return channel_sum_error(sums, _totals(F.linear(features, weight, bias)), kind, scale)

        totals = slice(self.mlp.last_linear.out_features - N_CHANNELS, None)
        return self._refit_output_rows(totals, full_batch_loss, steps, learning_rate, time_is_up)

    def _hidden_features(self, codes: torch.Tensor) -> torch.Tensor:
        """The input of the output layer, without gradients."""
        with torch.no_grad():
            features = codes
            for layer in list(self.mlp)[:-1]:
                features = layer(features)
        return features

    def _refit_output_rows(
        self, rows: slice, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        steps: int, learning_rate: float, time_is_up: Callable[[], bool],
    ) -> float:
        """Adam on ``rows`` of the output layer alone, its learning rate decayed to 0 along
        a cosine; ``loss_of(weight, bias)`` gives one step's loss. Returns the mean loss of
        the last tenth of the steps (the last step's when ``time_is_up()`` stops it)."""
        last = self.mlp.last_linear
        weight = last.weight[rows].detach().clone().requires_grad_(True)
        bias = last.bias[rows].detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([weight, bias], lr=learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        tail = max(steps // 10, 1)
        reported = 0.0
        loss = torch.zeros(())
        for step in range(steps):
            if time_is_up():
                reported = float(loss.detach())
                break
            loss = loss_of(weight, bias)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            if step >= steps - tail:
                reported += float(loss.detach()) / tail
        with torch.no_grad():
            last.weight[rows] = weight
            last.bias[rows] = bias
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


def _totals(log_totals: torch.Tensor) -> torch.Tensor:
    """Channel sums from the network's total outputs: softplus keeps log(1 + S_c) >= 0
    with a gradient everywhere."""
    return F.softplus(log_totals).expm1()
