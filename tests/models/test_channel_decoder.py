"""The ZN decoder whose channel sums are outputs of their own."""

from __future__ import annotations

import pytest
import torch

from calosim.data.transforms import counts_from_log
from calosim.metrics import channel_mask, channels
from calosim.nn.channel_decoder import ChannelTotalsDecoder
from calosim.nn.losses import channel_shape_divergence


def decoder_and_codes(parity: str = "odd") -> tuple[ChannelTotalsDecoder, torch.Tensor]:
    torch.manual_seed(0)
    decoder = ChannelTotalsDecoder(6, [32], (44, 44), parity=parity)
    return decoder, 3.0 * torch.randn(50, 6)


@pytest.mark.parametrize("parity", ["odd", "even"])
def test_channel_sums_are_the_predicted_totals(parity: str) -> None:
    decoder, codes = decoder_and_codes(parity)
    images = decoder(codes)
    assert images.shape == (50, 44, 44) and bool((images >= 0).all())
    totals = torch.nn.functional.softplus(decoder.mlp(codes)[:, -5:]).expm1()
    sums = channels(counts_from_log(images), parity=parity)
    assert torch.allclose(sums, totals, rtol=1e-4)
    # the pixel logits move the light within a channel, never between channels
    with torch.no_grad():
        decoder.mlp[-1].bias[:-5] += torch.linspace(-3, 3, 44 * 44)
    moved = decoder(codes)
    assert not torch.allclose(moved, images)
    assert torch.allclose(channels(counts_from_log(moved), parity=parity), sums, rtol=1e-4)


def test_channel_loss_gradient_reaches_the_totals() -> None:
    """The channel term trains the totals directly: its gradient raises a total below its
    target and lowers one above it, and leaves the pixel logits alone."""
    decoder, codes = decoder_and_codes()
    current = channels(counts_from_log(decoder(codes))).detach()
    target = current * torch.tensor([2.0, 2.0, 0.5, 0.5, 2.0])
    loss = (channels(counts_from_log(decoder(codes))) - target).abs().mean()
    loss.backward()
    bias_gradient = decoder.mlp[-1].bias.grad
    assert torch.equal(bias_gradient[-5:] < 0, torch.tensor([True, True, False, False, True]))
    assert bias_gradient[:-5].abs().max().item() < 1e-6 * bias_gradient[-5:].abs().min().item()


def test_untrained_totals_start_at_the_initial_total() -> None:
    torch.manual_seed(0)
    decoder = ChannelTotalsDecoder(6, [32], (44, 44), initial_total=300.0)
    sums = channels(counts_from_log(decoder(torch.randn(200, 6))))
    assert 150.0 < sums.median().item() < 600.0
    with pytest.raises(ValueError, match="initial_total must be positive"):
        ChannelTotalsDecoder(6, [32], (44, 44), initial_total=0.0)


@pytest.mark.parametrize("parity", ["odd", "even"])
def test_training_shares_and_totals_give_the_generated_counts(parity: str) -> None:
    decoder, codes = decoder_and_codes(parity)
    log_shares, totals = decoder.shares_and_totals(codes)
    mask = torch.tensor(channel_mask(parity), dtype=torch.float32)
    assert torch.allclose(log_shares.exp() @ mask, torch.ones(50, 5), atol=1e-5)
    rebuilt = log_shares.exp() * (totals @ mask.T)
    assert torch.allclose(rebuilt.view(50, 44, 44), decoder.counts(codes), rtol=1e-4, atol=1e-6)


def test_shape_divergence_is_zero_at_the_real_shares_and_positive_elsewhere() -> None:
    generator = torch.Generator().manual_seed(0)
    counts = torch.poisson(5.0 * torch.rand(8, 44, 44, generator=generator), generator=generator)
    mask = torch.tensor(channel_mask(), dtype=torch.float32)
    flat = counts.reshape(8, -1)
    own = (flat / ((flat @ mask) @ mask.T)).clamp(min=1e-30).log()
    assert abs(channel_shape_divergence(counts, own, mask).item()) < 1e-5
    uniform = -((torch.ones(1, 1936) @ mask) @ mask.T).log().expand(8, -1)
    assert channel_shape_divergence(counts, uniform, mask).item() > 0.05


def test_fitted_shares_are_the_expected_shares_with_no_light_left_over() -> None:
    """Fitted to Poisson draws of one intensity pattern, the decoder's shares converge to
    the draws' share of each channel's light (each response's photons weighted by one over
    its total: the divergence's optimum), not to a pattern where one pixel collects the
    light the others lack (which a per-pixel loss in log space gives once the sums are
    fixed)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    intensity = 0.2 + 3.0 * torch.rand(44, 44, generator=generator)
    counts = torch.poisson(intensity.expand(200, 44, 44), generator=generator)
    decoder = ChannelTotalsDecoder(1, [4], (44, 44))
    optimiser = torch.optim.Adam(decoder.parameters(), lr=0.1)
    codes = torch.zeros(200, 1)
    for _ in range(150):
        optimiser.zero_grad()
        loss = channel_shape_divergence(counts, decoder.shares_and_totals(codes)[0], decoder.mask)
        loss.backward()
        optimiser.step()
    shares = decoder.shares_and_totals(codes[:1])[0].exp().view(44, 44)
    flat = counts.reshape(200, -1)
    pooled = (flat / flat.sum(dim=1, keepdim=True)).sum(dim=0, keepdim=True)
    expected = (pooled / ((pooled @ decoder.mask) @ decoder.mask.T)).view(44, 44)
    assert (shares / expected - 1).abs().max().item() < 0.05


@pytest.mark.parametrize("parity", ["odd", "even"])
def test_fitted_totals_reach_each_codes_median_sums_and_keep_the_shares(parity: str) -> None:
    """Two codes, each with its own spread of channel sums: refitted by the L1 channel
    error, the totals of each code become the median of its sums (the L1 optimum), and the
    light's spread within the channels does not move."""
    decoder, _ = decoder_and_codes(parity)
    codes = torch.cat([torch.zeros(300, 6), torch.ones(300, 6)])
    generator = torch.Generator().manual_seed(2)
    centres = torch.tensor([[50.0, 80.0, 20.0, 40.0, 200.0], [500.0, 300.0, 900.0, 100.0, 1e3]])
    sums = centres.repeat_interleave(300, dim=0) * torch.exp(
        0.3 * torch.randn(600, 5, generator=generator))
    shares_before, _ = decoder.shares_and_totals(codes)
    decoder.fit_totals(codes, sums, steps=1500, learning_rate=0.05, kind="l1", scale=100.0)
    shares_after, totals = decoder.shares_and_totals(codes)
    assert torch.equal(shares_after, shares_before)
    for group in (slice(0, 300), slice(300, 600)):
        median = sums[group].median(dim=0).values
        assert ((totals[group] / median - 1).abs().max().item()) < 0.03


def test_channel_sums_follow_the_decoders_partition() -> None:
    counts = torch.poisson(3.0 * torch.rand(4, 44, 44, generator=torch.Generator().manual_seed(0)))
    for parity in ("odd", "even"):
        decoder = ChannelTotalsDecoder(6, [8], (44, 44), parity=parity)
        assert torch.allclose(decoder.channel_sums(counts), channels(counts, parity=parity))
