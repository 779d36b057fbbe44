"""Channel Wasserstein, MAE, pooled log W1, energy bins and noise-floor ratios."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from calosim.errors import CalosimError
from calosim.metrics import (
    ChannelWasserstein,
    channel_mae,
    channel_wasserstein,
    channels,
    pooled_log_wasserstein,
    ratio_to_floor,
    wasserstein_by_energy_bin,
    zdc_metrics,
)

SHIFTS = np.array([0.0, 1.0, 2.5, 5.0, 10.0])


def poisson_images(seed: int, n: int, rate: float = 0.2) -> np.ndarray:
    return np.random.default_rng(seed).poisson(rate, size=(n, 44, 44)).astype(np.float32)


def test_wasserstein_of_shifted_normals_is_the_shift_and_equals_scipy():
    rng = np.random.default_rng(0)
    real = rng.normal(100.0, 10.0, size=(20000, 5))
    generated = rng.normal(100.0, 10.0, size=(15000, 5)) + SHIFTS
    result = channel_wasserstein(real, generated)
    assert isinstance(result, ChannelWasserstein)
    # Two independent samples of 1.5e4-2e4 draws of sigma 10 differ by W1 ~ 0.1-0.2.
    np.testing.assert_allclose(result.per_channel, SHIFTS, atol=0.35)
    for c in range(5):
        assert result.per_channel[c] == wasserstein_distance(real[:, c], generated[:, c])
    assert result.mean == pytest.approx(result.per_channel.mean())
    assert result.to_dict() == {"per_channel": list(result.per_channel), "mean": result.mean}


def test_wasserstein_is_zero_for_identical_sets_and_accepts_responses():
    images = poisson_images(1, 300)
    assert channel_wasserstein(images, images).mean == 0.0
    from_images = channel_wasserstein(images, poisson_images(2, 200))
    from_channels = channel_wasserstein(channels(images), channels(poisson_images(2, 200)))
    np.testing.assert_allclose(from_images.per_channel, from_channels.per_channel)
    assert from_images.mean > 0


def test_channel_mae_of_known_pairs():
    real = np.zeros((4, 5))
    generated = np.arange(20, dtype=float).reshape(4, 5) * np.array([1, -1, 1, -1, 1])
    assert channel_mae(real, generated) == pytest.approx(np.arange(20).mean())
    image = np.zeros((44, 44))
    image[0, 0] = 5.0  # channel 1 only
    assert channel_mae(image[None], np.zeros((1, 44, 44))) == pytest.approx(5.0 / 5)


def test_channel_mae_needs_paired_sets():
    with pytest.raises(CalosimError, match="paired sets of equal length, got 3 real and 2"):
        channel_mae(np.zeros((3, 5)), np.zeros((2, 5)))


def test_pooled_log_wasserstein_applies_log1p_per_pixel_before_summing():
    e_minus_one = np.e - 1.0
    reference = np.zeros((1, 44, 44))
    reference[0, 0, 0] = reference[0, 2, 0] = e_minus_one  # both in channel 1: log sum 2
    generated = np.zeros((1, 44, 44))
    # Pooled 5 values {2, 0, 0, 0, 0} against {0, 0, 0, 0, 0}: W1 = 2 / 5. Summing
    # counts first would give log(1 + 2(e - 1)) / 5 instead.
    assert pooled_log_wasserstein(reference, generated) == pytest.approx(0.4)
    generated[0, 1, 0] = e_minus_one  # common PMT (odd): {1, 0, 0, 0, 0} -> W1 1/5
    assert pooled_log_wasserstein(reference, generated) == pytest.approx(0.2)
    assert pooled_log_wasserstein(reference, generated, parity="even") == pytest.approx(0.2)


def test_pooled_log_wasserstein_needs_images():
    with pytest.raises(CalosimError, match=r"real: expected responses of shape \(N, 44, 44\)"):
        pooled_log_wasserstein(np.zeros((3, 5)), np.zeros((3, 44, 44)))


def test_zdc_metrics_layout_and_values():
    reference, generated = poisson_images(3, 400), poisson_images(4, 400, rate=0.25)
    metrics = zdc_metrics(reference, generated)
    json.dumps(metrics, allow_nan=False)
    expected = channel_wasserstein(reference, generated)
    assert metrics["wasserstein"] == expected.to_dict()
    assert metrics["mae"] == pytest.approx(channel_mae(reference, generated))
    assert metrics["pooled_log_wasserstein"] == pytest.approx(
        pooled_log_wasserstein(reference, generated)
    )
    assert (metrics["n_reference"], metrics["n_generated"]) == (400, 400)
    observed = metrics["observables"]
    sums = generated.sum(axis=(1, 2))
    assert observed["generated"]["photon_sum"]["mean"] == pytest.approx(sums.mean())
    assert observed["photon_sum_wasserstein"] == pytest.approx(
        wasserstein_distance(reference.sum(axis=(1, 2)), sums)
    )
    assert "ratio_to_floor" not in metrics


def test_zdc_metrics_leaves_out_mae_for_unpaired_sets():
    metrics = zdc_metrics(poisson_images(5, 300), poisson_images(6, 200))
    assert "mae" not in metrics
    assert metrics["n_generated"] == 200


def test_ratio_to_floor():
    reference = poisson_images(7, 300)
    floor = zdc_metrics(reference, poisson_images(8, 300))
    metrics = zdc_metrics(reference, poisson_images(9, 300, rate=0.3), floor=floor)
    ratios = metrics["ratio_to_floor"]
    assert ratios["wasserstein_mean"] == pytest.approx(
        metrics["wasserstein"]["mean"] / floor["wasserstein"]["mean"]
    )
    assert ratios["mae"] == pytest.approx(metrics["mae"] / floor["mae"])
    assert ratios["pooled_log_wasserstein"] == pytest.approx(
        metrics["pooled_log_wasserstein"] / floor["pooled_log_wasserstein"]
    )
    np.testing.assert_allclose(
        ratios["wasserstein_per_channel"],
        np.divide(metrics["wasserstein"]["per_channel"], floor["wasserstein"]["per_channel"]),
    )
    # A model much worse than the simulator's own fluctuation reads as a ratio above 1.
    assert ratios["wasserstein_mean"] > 2


def test_ratio_to_a_zero_floor_is_undefined_and_bad_floor_is_rejected():
    reference = poisson_images(10, 100)
    zero_floor = zdc_metrics(reference, reference)
    ratios = zdc_metrics(reference, poisson_images(11, 100), floor=zero_floor)["ratio_to_floor"]
    assert ratios["wasserstein_mean"] is None and ratios["mae"] is None
    metrics = zdc_metrics(reference, poisson_images(12, 100))
    with pytest.raises(CalosimError, match="floor: not a zdc_metrics result"):
        ratio_to_floor(metrics, {"mae": 1.0})


def test_non_finite_or_empty_inputs_are_rejected_naming_the_set():
    generated = poisson_images(13, 10)
    generated[3, 5, 5] = np.nan
    with pytest.raises(CalosimError, match="generated: 1 response"):
        zdc_metrics(poisson_images(14, 10), generated)
    with pytest.raises(CalosimError, match="reference: holds no responses"):
        zdc_metrics(np.zeros((0, 44, 44)), poisson_images(15, 10))


def test_wasserstein_by_energy_bin():
    n = 600
    energies = np.linspace(1.0, 7000.0, n)
    reference = np.random.default_rng(16).normal(50.0, 5.0, size=(n, 5))
    generated = reference.copy()
    high = energies >= 3500.0
    generated[high] += SHIFTS  # perfect below 3500 GeV, shifted above
    rows = wasserstein_by_energy_bin(reference, generated, energies, [0.0, 3500.0, 7000.0])
    json.dumps(rows, allow_nan=False)
    assert [row["n"] for row in rows] == [int((~high).sum()), int(high.sum())]
    assert rows[0]["wasserstein_mean"] == 0.0 and rows[0]["mae"] == 0.0
    np.testing.assert_allclose(rows[1]["wasserstein_per_channel"], SHIFTS, atol=1e-9)
    assert rows[1]["mae"] == pytest.approx(SHIFTS.mean())


def test_wasserstein_by_energy_bin_quantiles_and_particle_table():
    n = 500
    particles = np.zeros((n, 9))
    particles[:, 0] = np.random.default_rng(17).uniform(1.0, 7000.0, n)
    images = poisson_images(18, n)
    rows = wasserstein_by_energy_bin(images, images, particles, 5)
    assert [row["n"] for row in rows] == [100] * 5
    assert rows[0]["energy_low"] == particles[:, 0].min()
    assert rows[-1]["energy_high"] == particles[:, 0].max()
    empty = wasserstein_by_energy_bin(images, images, particles, [8000.0, 9000.0])
    assert empty[0]["n"] == 0 and empty[0]["wasserstein_mean"] is None


def test_wasserstein_by_energy_bin_rejects_unpaired_sets_and_bad_edges():
    with pytest.raises(CalosimError, match="paired sets"):
        wasserstein_by_energy_bin(np.zeros((4, 5)), np.zeros((4, 5)), np.ones(3), 2)
    with pytest.raises(CalosimError, match="increasing bin edges"):
        wasserstein_by_energy_bin(np.zeros((4, 5)), np.zeros((4, 5)), np.ones(4), [5.0, 1.0])
