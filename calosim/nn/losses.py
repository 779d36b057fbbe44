"""Losses of the learned models: Laplacian pyramid L1, channel-sum errors, Sinkhorn
divergence, latent diversity regulariser and MMD."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from geomloss import SamplesLoss
from torch import nn

from calosim.data.transforms import counts_from_log, log_counts
from calosim.metrics import channels

# 5-tap binomial filter: a cheap, separable approximation of a Gaussian blur
_BINOMIAL_5 = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


def _blur(images: torch.Tensor) -> torch.Tensor:
    """Separable 5x5 binomial blur of (N, 1, H, W) images, edges replicated.

    Written as weighted sums of shifted views: for single-channel images this is several
    times faster on a CPU than conv2d, whose kernels are tuned for many channels.
    """
    height, width = images.shape[-2:]
    padded = F.pad(images, (2, 2, 2, 2), mode="replicate")
    rows = sum(w * padded[..., i : i + height, :] for i, w in enumerate(_BINOMIAL_5))
    return sum(w * rows[..., i : i + width] for i, w in enumerate(_BINOMIAL_5))


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of (N, H, W) images, finest level first.

    Each of the first ``levels - 1`` entries is an image minus the upsampled version of
    its blurred, half-resolution copy (the band-pass detail); the last entry is the
    remaining low-pass image. Summing the upsampled levels gives the images back.
    """
    if levels < 1:
        raise ValueError(f"a Laplacian pyramid needs at least one level, got {levels}")
    current = images.unsqueeze(1)
    pyramid: list[torch.Tensor] = []
    for _ in range(levels - 1):
        coarse = _blur(current)[:, :, ::2, ::2]
        upsampled = F.interpolate(coarse, size=current.shape[-2:], mode="bilinear",
                                  align_corners=False)
        pyramid.append((current - upsampled).squeeze(1))
        current = coarse
    pyramid.append(current.squeeze(1))
    return pyramid


def laplacian_pyramid_l1(
    target: torch.Tensor, prediction: torch.Tensor, levels: int = 3
) -> torch.Tensor:
    """Sum over levels j of 2^(2j) |L^j(target) - L^j(prediction)|_1 (thesis eq. 4.1).

    Normalised per pixel of the finest level and per image, so the value does not grow
    with batch size or resolution; the 2^(2j) factor makes each level count as much as
    the finest one although it has 4^j times fewer pixels.
    """
    n_pixels = target.shape[0] * target.shape[-1] * target.shape[-2]
    total = target.new_zeros(())
    levels_target = laplacian_pyramid(target, levels)
    levels_prediction = laplacian_pyramid(prediction, levels)
    for j, (a, b) in enumerate(zip(levels_target, levels_prediction, strict=True)):
        total = total + (4.0**j) * (a - b).abs().sum()
    return total / n_pixels


class ConditionalSinkhorn(nn.Module):
    """Debiased Sinkhorn divergence between the point clouds [codes_a, s * y] and
    [codes_b, s * y] (thesis eq. 4.4 with 4.8), with cost |u - v|^2 / 2.

    ``condition_scale`` s sets how much a pairing across different conditions costs:
    large values force codes to be matched only with codes of similar conditions. It is
    one number, or one per condition column (to discount conditions with little effect).
    geomloss's tensorized backend holds the full cost matrix, fine for batches of a
    few thousand and free of the optional KeOps compiler.
    """

    def __init__(
        self,
        blur: float = 0.05,
        scaling: float = 0.5,
        condition_scale: float | Sequence[float] = 1.0,
    ) -> None:
        super().__init__()
        # not persistent: a fixed hyper-parameter, kept out of the model's weights
        self.register_buffer(
            "condition_scale", torch.as_tensor(condition_scale, dtype=torch.float32),
            persistent=False,
        )
        self.divergence = SamplesLoss(
            "sinkhorn", p=2, blur=blur, scaling=scaling, debias=True, backend="tensorized"
        )

    def forward(
        self,
        codes_a: torch.Tensor,
        codes_b: torch.Tensor,
        conditions_a: torch.Tensor | None = None,
        conditions_b: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Divergence between two clouds; conditions_b defaults to conditions_a."""
        if conditions_a is not None:
            conditions_b = conditions_a if conditions_b is None else conditions_b
            codes_a = torch.cat([codes_a, self.condition_scale * conditions_a], dim=1)
            codes_b = torch.cat([codes_b, self.condition_scale * conditions_b], dim=1)
        return self.divergence(codes_a, codes_b)


# exp(20) photons in one fibre is far beyond any response: a bound that keeps an
# untrained decoder's exp() finite
_MAX_LOG_COUNT = 20.0


def _channel_counts(log_images: torch.Tensor) -> torch.Tensor:
    return channels(counts_from_log(log_images.clamp(max=_MAX_LOG_COUNT)))


def channel_error(
    images: torch.Tensor, reconstruction: torch.Tensor, kind: str, scale: float
) -> torch.Tensor:
    """Error between the 5 channel sums (photon counts) of two batches of log(1 + counts)
    images: "l1": mean absolute difference / scale, which weighs photons equally (as the
    channel MAE and W1 do); "log_mse": MSE of log(1 + sums), which weighs relative errors
    equally."""
    return channel_sum_error(channels(counts_from_log(images)), _channel_counts(reconstruction),
                             kind, scale)


def channel_sum_error(
    real: torch.Tensor, rebuilt: torch.Tensor, kind: str, scale: float
) -> torch.Tensor:
    """channel_error on (N, 5) channel sums in photon counts."""
    if kind == "l1":
        return F.l1_loss(rebuilt, real) / scale
    return F.mse_loss(log_counts(rebuilt), log_counts(real))


def channel_shape_divergence(
    counts: torch.Tensor, log_shares: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean over responses of KL(real || model) between where the photons of each channel
    fall, weighted by the channels' light: sum_p (x_p / S) log((x_p / S_c(p)) / q_p), with
    x (N, 44, 44) counts, S their total, S_c(p) the sum of pixel p's channel and
    ``log_shares`` (N, 1936) the model's log q_p (each channel's q summing to 1) over the
    channels of the 0/1 ``mask`` (1936, 5). Up to a constant this is the negative
    log-likelihood per photon of a multinomial draw of the photons over their channel's
    pixels, so its optimum is the expected share E[x_p / S_c] and, unlike a per-pixel loss
    in log space, it leaves no light over when the channel sums are fixed. Empty responses
    count 0."""
    flat = counts.reshape(counts.shape[0], -1)
    mask = mask.to(flat.dtype)
    channel_of_pixel = (flat @ mask) @ mask.T
    tiny = torch.finfo(flat.dtype).tiny
    real = torch.xlogy(flat, flat / channel_of_pixel.clamp(min=tiny))
    divergence = (real - flat * log_shares).sum(dim=1) / flat.sum(dim=1).clamp(min=tiny)
    return divergence.mean()


def energy_score(draws: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean energy score E|X - t| - E|X - X'| / 2 of the draws X of each target t
    (Gneiting and Raftery 2007), with Euclidean norms.

    ``draws`` (M >= 2, B, D) are M independent samples of the model's distribution for
    each of the B targets (B, D). The score is a strictly proper scoring rule: in
    expectation it is minimal exactly when each draw follows the true conditional
    distribution of its target, so it fits a conditional generator one observed example
    per condition, without pairing examples of different conditions.
    """
    n_draws = draws.shape[0]
    if n_draws < 2:
        raise ValueError(f"the energy score needs at least 2 draws per target, got {n_draws}")
    fit = (draws - targets).norm(dim=-1).mean()
    first, second = torch.triu_indices(n_draws, n_draws, offset=1, device=draws.device)
    spread = (draws[first] - draws[second]).norm(dim=-1).mean()
    return fit - 0.5 * spread


def latent_diversity(codes: torch.Tensor, threshold: float) -> torch.Tensor:
    """Masked squared cosine similarity between the codes of a batch (thesis eq. 4.5-4.6).

    Pairs (i != j) whose |cosine similarity| is below ``threshold`` are dropped; the
    squares of the others are averaged over all B(B-1) ordered pairs, so the scale does
    not depend on the batch size.
    """
    n = codes.shape[0]
    if n < 2:
        return codes.new_zeros(())
    unit = F.normalize(codes, dim=1, eps=1e-8)
    similarity = unit @ unit.T
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=codes.device)
    mask = (similarity.abs() >= threshold) & off_diagonal
    return (similarity.square() * mask).sum() / (n * (n - 1))


def mmd_inverse_multiquadric(
    samples_a: torch.Tensor,
    samples_b: torch.Tensor,
    scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
) -> torch.Tensor:
    """Unbiased MMD^2 with a sum of inverse multiquadric kernels C / (C + |u - v|^2),
    C = 2 * dim * scale (as in Wasserstein autoencoders)."""
    n, dim = samples_a.shape
    m = samples_b.shape[0]
    dist_aa = torch.cdist(samples_a, samples_a).square()
    dist_bb = torch.cdist(samples_b, samples_b).square()
    dist_ab = torch.cdist(samples_a, samples_b).square()
    off_a = ~torch.eye(n, dtype=torch.bool, device=samples_a.device)
    off_b = ~torch.eye(m, dtype=torch.bool, device=samples_b.device)
    total = samples_a.new_zeros(())
    for scale in scales:
        c = 2.0 * dim * scale
        k_aa = (c / (c + dist_aa))[off_a].sum() / (n * (n - 1))
        k_bb = (c / (c + dist_bb))[off_b].sum() / (m * (m - 1))
        k_ab = (c / (c + dist_ab)).mean()
        total = total + k_aa + k_bb - 2.0 * k_ab
    return total
