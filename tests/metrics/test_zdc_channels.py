"""The 5 ZN channels: convention, both parities, numpy and torch, chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import calosim
from calosim.errors import CalosimError
from calosim.metrics import channel_mask, channels, observables
from calosim.metrics.zdc import with_channel_sums

# (x, y, expected channel index) for parity "odd": x + y even -> tower by quadrant,
# x + y odd -> common PMT (index 4).
ODD_PARITY_CASES = [
    (0, 0, 0), (21, 21, 0), (0, 22, 1), (20, 42, 1), (22, 0, 2), (42, 20, 2),
    (22, 22, 3), (43, 43, 3), (0, 1, 4), (21, 22, 4), (43, 42, 4), (22, 21, 4),
]


def reference_channels(image: np.ndarray, parity: str) -> np.ndarray:
    """A direct loop over the pixels, written from the convention in the facts file."""
    common_parity = 1 if parity == "odd" else 0
    sums = np.zeros(5)
    for x in range(44):
        for y in range(44):
            if (x + y) % 2 == common_parity:
                sums[4] += image[x, y]
            else:
                sums[2 * (x >= 22) + (y >= 22)] += image[x, y]
    return sums


def lit_pixel(x: int, y: int, value: float = 7.0) -> np.ndarray:
    image = np.zeros((44, 44))
    image[x, y] = value
    return image


@pytest.mark.parametrize(("x", "y", "channel"), ODD_PARITY_CASES)
def test_single_lit_pixel_goes_to_its_channel_for_both_parities(x, y, channel):
    expected = np.zeros(5)
    expected[channel] = 7.0
    np.testing.assert_array_equal(channels(lit_pixel(x, y)), expected)

    # The even convention swaps which parity feeds the common PMT.
    if channel == 4:
        even_channel = 2 * (x >= 22) + (y >= 22)
    else:
        even_channel = 4
    expected_even = np.zeros(5)
    expected_even[even_channel] = 7.0
    np.testing.assert_array_equal(channels(lit_pixel(x, y), parity="even"), expected_even)


@pytest.mark.parametrize("parity", ["odd", "even"])
def test_image_of_ones_counts_fibres_per_channel(parity):
    np.testing.assert_array_equal(channels(np.ones((44, 44)), parity), [242] * 4 + [968])
    mask = channel_mask(parity)
    assert mask.shape == (1936, 5)
    np.testing.assert_array_equal(mask.sum(axis=1), np.ones(1936))


@pytest.mark.parametrize("parity", ["odd", "even"])
def test_random_images_match_the_loop_and_sum_to_the_total(parity):
    images = np.random.default_rng(3).poisson(2.0, size=(6, 44, 44)).astype(np.float32)
    result = channels(images, parity)
    assert result.shape == (6, 5)
    assert result.dtype == np.float64
    for image, row in zip(images, result, strict=True):
        np.testing.assert_allclose(row, reference_channels(image, parity))
    np.testing.assert_allclose(result.sum(axis=1), images.sum(axis=(1, 2)))


def test_parities_differ_on_a_checkerboard_but_share_the_total():
    images = np.random.default_rng(4).exponential(1.0, size=(3, 44, 44))
    odd, even = channels(images, "odd"), channels(images, "even")
    assert not np.allclose(odd, even)
    np.testing.assert_allclose(odd.sum(axis=1), even.sum(axis=1))


def test_chunked_computation_equals_one_chunk(monkeypatch):
    images = np.random.default_rng(5).poisson(1.0, size=(23, 44, 44))
    whole = channels(images)
    monkeypatch.setattr(observables, "CHUNK_SIZE", 4)
    assert [len(c) for c in observables.iter_chunks(images)] == [4] * 5 + [3]
    np.testing.assert_array_equal(channels(images), whole)


def test_torch_agrees_with_numpy_and_keeps_dtype():
    images = np.random.default_rng(6).poisson(3.0, size=(5, 44, 44)).astype(np.float32)
    tensor_result = channels(torch.from_numpy(images))
    assert isinstance(tensor_result, torch.Tensor)
    assert tensor_result.dtype == torch.float32
    np.testing.assert_allclose(tensor_result.numpy(), channels(images), rtol=1e-6)
    single = channels(torch.from_numpy(images[0]).double())
    assert single.shape == (5,) and single.dtype == torch.float64
    integer = channels(torch.from_numpy(images.astype(np.int64)))
    np.testing.assert_array_equal(integer.numpy(), channels(images))


def test_torch_gradient_flows_to_every_pixel():
    images = torch.rand(2, 44, 44, dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    (channels(images) * weights).sum().backward()
    expected = torch.from_numpy(channel_mask("odd") @ weights.numpy()).reshape(44, 44)
    torch.testing.assert_close(images.grad, expected.expand(2, 44, 44))


def test_gradient_flows_after_first_use_under_inference_mode():
    from calosim.metrics.zdc import _torch_mask

    _torch_mask.cache_clear()  # the cached mask is first made under inference mode
    with torch.inference_mode():
        channels(torch.ones(1, 44, 44, dtype=torch.float64))
    images = torch.ones(1, 44, 44, dtype=torch.float64, requires_grad=True)
    channels(images).sum().backward()
    torch.testing.assert_close(images.grad, torch.ones(1, 44, 44, dtype=torch.float64))


def test_single_image_gives_five_values_and_package_reexports():
    assert channels(np.ones((44, 44))).shape == (5,)
    assert channels(np.ones((1, 44, 44))).shape == (1, 5)
    assert calosim.channels is channels


@pytest.mark.parametrize(
    "bad", [np.ones((44, 43)), np.ones((2, 44)), np.ones((2, 3, 44, 44)), torch.ones(3, 44)]
)
def test_bad_shape_raises_one_line_value_error(bad):
    with pytest.raises(CalosimError, match=r"expected .*\(N, 44, 44\)") as error:
        channels(bad)
    assert isinstance(error.value, ValueError)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("parity", ["ODD", "", None, "both"])
def test_bad_parity_raises(parity):
    with pytest.raises(CalosimError, match="parity must be 'odd' or 'even'"):
        channels(np.ones((44, 44)), parity=parity)


@pytest.mark.parametrize("parity", ["odd", "even"])
def test_rescaling_to_channel_sums_keeps_the_spread_within_each_channel(parity):
    generator = torch.Generator().manual_seed(0)
    counts = torch.rand(6, 44, 44, generator=generator, dtype=torch.float64)
    counts[0].view(-1)[torch.from_numpy(channel_mask(parity)[:, 2] > 0)] = 0.0  # dark channel
    sums = 1.0 + 500.0 * torch.rand(6, 5, generator=generator, dtype=torch.float64)
    scaled = with_channel_sums(counts, sums, parity)
    expected = sums.clone()
    expected[0, 2] = 0.0  # no light to spread: the channel stays dark
    assert torch.allclose(channels(scaled, parity), expected)
    # within a channel, each pixel keeps its share of the channel's light
    pixel_channel = torch.from_numpy(channel_mask(parity).argmax(axis=1))
    ratio = (scaled / counts.clamp(min=1e-300)).reshape(6, -1)
    factor = (expected / channels(counts, parity).clamp(min=1e-300))[:, pixel_channel]
    lit = counts.reshape(6, -1) > 0
    assert torch.allclose(ratio[lit], factor[lit])
