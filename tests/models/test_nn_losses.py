"""Building-block losses: Laplacian pyramid L1, channel sums, conditional Sinkhorn, energy
score, latent diversity, MMD."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from calosim.nn.losses import (
    ConditionalSinkhorn,
    channel_error,
    energy_score,
    laplacian_pyramid,
    laplacian_pyramid_l1,
    latent_diversity,
    mmd_inverse_multiquadric,
)


def test_laplacian_pyramid_levels_rebuild_the_image() -> None:
    images = torch.rand(3, 44, 44, generator=torch.Generator().manual_seed(0))
    pyramid = laplacian_pyramid(images, 3)
    assert [tuple(level.shape) for level in pyramid] == [(3, 44, 44), (3, 22, 22), (3, 11, 11)]
    rebuilt = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        rebuilt = detail + F.interpolate(
            rebuilt.unsqueeze(1), size=detail.shape[-2:], mode="bilinear", align_corners=False
        ).squeeze(1)
    torch.testing.assert_close(rebuilt, images)


def test_laplacian_l1_is_zero_for_equal_images_and_weights_coarse_levels() -> None:
    images = torch.rand(2, 44, 44, generator=torch.Generator().manual_seed(1))
    assert laplacian_pyramid_l1(images, images) == 0
    # a constant offset lives only in the low-pass level j=2 (11x11 pixels, weight 16):
    # 16 * 121 * 0.1 / 1936 = 0.1 per pixel, like a plain per-pixel L1
    shifted = laplacian_pyramid_l1(images, images + 0.1, levels=3)
    assert shifted.item() == pytest.approx(0.1, rel=1e-4)
    # a checkerboard is pure fine detail: its loss is the plain per-pixel L1 of level 0
    checker = ((torch.arange(44)[:, None] + torch.arange(44)[None, :]) % 2).float()
    detail = laplacian_pyramid_l1(images, images + checker, levels=1)
    assert detail.item() == pytest.approx(0.5, rel=1e-4)


def test_sinkhorn_of_identical_clouds_is_zero_with_finite_gradients() -> None:
    generator = torch.Generator().manual_seed(2)
    codes = torch.randn(200, 5, generator=generator, requires_grad=True)
    conditions = torch.randn(200, 9, generator=generator)
    loss = ConditionalSinkhorn(blur=0.05, condition_scale=2.0)
    value = loss(codes, codes.detach().clone(), conditions)
    value.backward()
    assert abs(value.item()) < 1e-5
    assert torch.isfinite(codes.grad).all()
    assert codes.grad.abs().max() < 1e-5


def test_sinkhorn_grows_with_distance_and_pulls_clouds_together() -> None:
    generator = torch.Generator().manual_seed(3)
    target = torch.randn(300, 2, generator=generator)
    loss = ConditionalSinkhorn(blur=0.01)
    shifts = [0.5, 1.0, 2.0]
    values = [loss(target + s, target).item() for s in shifts]
    # W2^2 / 2 of a translation by s in both coordinates is s^2 (up to the blur)
    assert values == pytest.approx([s**2 for s in shifts], rel=0.05)
    moving = (target + 1.0).requires_grad_(True)
    loss(moving, target).backward()
    assert (moving.grad.mean(0) > 0).all()  # descending moves the cloud back by -1


def test_sinkhorn_condition_scale_makes_mismatched_conditions_costly() -> None:
    generator = torch.Generator().manual_seed(4)
    codes = torch.randn(200, 3, generator=generator)
    conditions = torch.randn(200, 2, generator=generator)
    shuffled = conditions[torch.randperm(200, generator=generator)]
    small = ConditionalSinkhorn(blur=0.05, condition_scale=0.1)(codes, codes, conditions, shuffled)
    large = ConditionalSinkhorn(blur=0.05, condition_scale=10.0)(codes, codes, conditions, shuffled)
    assert large > 50 * small


def test_latent_diversity_counts_only_similar_pairs() -> None:
    orthogonal = torch.eye(4)
    assert latent_diversity(orthogonal, 0.1) == 0
    identical = torch.ones(4, 3)
    assert latent_diversity(identical, 0.5).item() == pytest.approx(1.0)
    # cos = 0.6 for every pair: counted at threshold 0.5 (0.36), dropped at 0.7
    codes = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    assert latent_diversity(codes, 0.5).item() == pytest.approx(0.36)
    assert latent_diversity(codes, 0.7) == 0


def test_mmd_separates_distributions() -> None:
    generator = torch.Generator().manual_seed(5)
    a = torch.randn(300, 4, generator=generator)
    b = torch.randn(300, 4, generator=generator)
    shifted = torch.randn(300, 4, generator=generator) + 1.0
    same = mmd_inverse_multiquadric(a, b).item()
    different = mmd_inverse_multiquadric(a, shifted).item()
    assert abs(same) < 0.02
    assert different > 10 * abs(same)


def test_sinkhorn_per_condition_scales_discount_columns() -> None:
    generator = torch.Generator().manual_seed(6)
    codes = torch.randn(200, 3, generator=generator)
    conditions = torch.randn(200, 2, generator=generator)
    other = conditions.clone()
    other[:, 1] = torch.randn(200, generator=generator)  # only column 1 differs
    ignoring = ConditionalSinkhorn(blur=0.05, condition_scale=(10.0, 0.0))
    weighing = ConditionalSinkhorn(blur=0.05, condition_scale=(10.0, 10.0))
    assert abs(ignoring(codes, codes, conditions, other).item()) < 1e-4
    assert weighing(codes, codes, conditions, other).item() > 1.0
    assert "condition_scale" not in ignoring.state_dict()


def test_channel_error_counts_photons_of_the_five_channels() -> None:
    images = torch.zeros(2, 44, 44)
    images[:, 0, 0] = math.log1p(100.0)  # tower 1 (x + y even): 100 photons
    brighter = images.clone()
    brighter[:, 0, 1] = math.log1p(50.0)  # common channel (x + y odd): 50 more photons
    assert channel_error(images, images, "l1", 10.0) == 0
    # |diff| summed over channels is 50 per image, averaged over 5 channels: 10 photons
    assert channel_error(images, brighter, "l1", 10.0).item() == pytest.approx(1.0, rel=1e-5)
    expected = math.log1p(50.0) ** 2 / 5
    assert channel_error(images, brighter, "log_mse", 1.0).item() == pytest.approx(expected)


def test_energy_score_is_lowest_for_the_true_conditional_distribution() -> None:
    # targets t ~ N(mu_i, 0.5^2) per condition i; the true law must beat a collapsed one
    # (the conditional mean), an over-dispersed one and a shifted one
    generator = torch.Generator().manual_seed(7)
    means = torch.randn(4000, 2, generator=generator)
    targets = means + 0.5 * torch.randn(4000, 2, generator=generator)

    def score(spread: float, shift: float = 0.0) -> float:
        noise = torch.randn(4, 4000, 2, generator=generator)
        return energy_score(means + shift + spread * noise, targets).item()

    true = score(0.5)
    assert true < score(0.01) - 0.02
    assert true < score(1.0) - 0.02
    assert true < score(0.5, shift=0.3) - 0.02


def test_energy_score_of_a_point_mass_is_its_distance_and_needs_two_draws() -> None:
    targets = torch.zeros(3, 2)
    draws = torch.tensor([3.0, 4.0]).expand(2, 3, 2)  # both draws at distance 5, no spread
    assert energy_score(draws, targets).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="at least 2 draws"):
        energy_score(draws[:1], targets)
