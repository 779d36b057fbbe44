"""log(1 + x) and particle standardisation invert, on numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calosim.data import (
    ALICE_DEPLOYED,
    ParticleStandardiser,
    ZDCDataset,
    counts_from_log,
    log_counts,
)
from calosim.errors import CalosimError


def test_log_counts_inverts_on_numpy(dataset: ZDCDataset) -> None:
    logged = log_counts(dataset.responses)
    assert logged.dtype == np.float32
    np.testing.assert_allclose(logged, np.log(1 + dataset.responses.astype(np.float64)),
                               rtol=1e-6)
    np.testing.assert_allclose(counts_from_log(logged), dataset.responses, rtol=1e-5, atol=1e-5)


def test_log_counts_inverts_on_torch(dataset: ZDCDataset) -> None:
    counts = torch.from_numpy(dataset.responses)
    logged = log_counts(counts)
    assert isinstance(logged, torch.Tensor)
    torch.testing.assert_close(logged, torch.from_numpy(np.log1p(dataset.responses)))
    torch.testing.assert_close(counts_from_log(logged), counts)


def test_counts_from_log_clamps_at_zero() -> None:
    assert counts_from_log(np.array([-2.0, -1e-3]))[0] == 0.0
    assert np.all(counts_from_log(np.array([-2.0, -1e-3, 0.5])) >= 0)
    assert torch.all(counts_from_log(torch.tensor([-2.0, -0.1])) == 0)


def test_standardiser_fit_and_inverse(dataset: ZDCDataset) -> None:
    standardiser = ParticleStandardiser.fit(dataset.particles)
    z = standardiser.transform(dataset.particles)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-4)
    # float32 round-off, measured in units of each column's spread
    error = (standardiser.inverse(z) - dataset.particles) / standardiser.scales
    np.testing.assert_allclose(error, 0, atol=1e-6)


def test_standardiser_on_torch_matches_numpy(dataset: ZDCDataset) -> None:
    x = torch.from_numpy(dataset.particles)
    z = ALICE_DEPLOYED.transform(x)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z, torch.from_numpy(ALICE_DEPLOYED.transform(dataset.particles)))
    torch.testing.assert_close(ALICE_DEPLOYED.inverse(z), x, rtol=1e-5, atol=1e-6)


def test_constant_columns_do_not_divide_by_zero() -> None:
    particles = np.zeros((20, 9), dtype=np.float32)
    particles[:, 0] = np.arange(20)
    particles[:, 8] = 1.0
    standardiser = ParticleStandardiser.fit(particles)
    assert standardiser.scales[8] == 1.0 and standardiser.scales[1] == 1.0
    z = standardiser.transform(particles)
    assert np.isfinite(z).all() and np.all(z[:, 8] == 0)


def test_standardiser_dict_round_trip() -> None:
    back = ParticleStandardiser.from_dict(ALICE_DEPLOYED.to_dict())
    np.testing.assert_array_equal(back.means, ALICE_DEPLOYED.means)
    np.testing.assert_array_equal(back.scales, ALICE_DEPLOYED.scales)
    with pytest.raises(CalosimError):
        ParticleStandardiser.from_dict({"means": [0.0] * 9})
    with pytest.raises(CalosimError):
        ParticleStandardiser(np.zeros(9), np.zeros(9))


def test_alice_deployed_values_from_the_facts_file() -> None:
    means = dict(zip(["Energy", "Vz", "Pz", "mass", "charge"],
                     ALICE_DEPLOYED.means[[0, 3, 6, 7, 8]], strict=True))
    scales = dict(zip(["Energy", "Vx", "Pz", "mass", "charge"],
                      ALICE_DEPLOYED.scales[[0, 1, 6, 7, 8]], strict=True))
    assert means == {"Energy": 1366.7, "Vz": 0.00107, "Pz": 39.1, "mass": 353.7,
                     "charge": 0.0629}
    assert scales == {"Energy": 1259.8, "Vx": 4.15e-6, "Pz": 1858.3, "mass": 455.0,
                      "charge": 0.2565}
