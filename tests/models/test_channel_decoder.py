"""The ZN decoder whose channel sums are outputs of their own."""

from __future__ import annotations

import pytest
import torch

from calosim.data.transforms import counts_from_log
from calosim.metrics import channels
from calosim.nn.channel_decoder import ChannelTotalsDecoder


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
