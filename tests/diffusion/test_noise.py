"""The per-step noise generator keyed by each row's starting noise."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from calosim.diffusion import StepNoise
from calosim.diffusion.noise import hash32


def _lowbias32_reference(x: int) -> int:
    """Plain-Python lowbias32 with exact unsigned 32-bit arithmetic."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_matches_unsigned_32_bit_reference() -> None:
    values = [0, 1, 2, 12345, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF]
    hashed = hash32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert hashed == [_lowbias32_reference(v) for v in values]


def test_noise_is_standard_normal_and_uncorrelated() -> None:
    start = torch.randn(512, 3, 8, generator=torch.Generator().manual_seed(0))
    noise = StepNoise(start)
    a = noise.normal(10, (3, 8))
    b = noise.normal(11, (3, 8))
    assert a.shape == (512, 3, 8) and a.dtype == torch.float32
    values = a.flatten().double().numpy()
    assert stats.kstest(values, "norm").pvalue > 1e-3
    assert abs(values.mean()) < 5 / values.size**0.5
    assert abs(values.std() - 1) < 5 / (2 * values.size) ** 0.5
    # across steps, rows and neighbouring elements the correlation is that of chance
    limit = 5 / values.size**0.5
    assert abs(np.corrcoef(values, b.flatten().double().numpy())[0, 1]) < limit
    flat = a.flatten(1).double().numpy()
    assert abs(np.corrcoef(flat[:-1].ravel(), flat[1:].ravel())[0, 1]) < 5 / flat[1:].size**0.5
    assert abs(np.corrcoef(flat[:, :-1].ravel(), flat[:, 1:].ravel())[0, 1]) < 0.03


def test_a_rows_noise_depends_only_on_its_own_start() -> None:
    start = torch.randn(64, 10, generator=torch.Generator().manual_seed(1))
    full = StepNoise(start).normal(3, (10,))
    part = StepNoise(start[40:50]).normal(3, (10,))
    shuffled = StepNoise(start.flip(0)).normal(3, (10,))
    assert torch.equal(part, full[40:50])
    assert torch.equal(shuffled, full.flip(0))
    assert torch.equal(StepNoise(start.double()).normal(3, (10,)), full)
    assert not torch.equal(full[0], full[1])
    assert not torch.equal(StepNoise(start).normal(4, (10,)), full)


def test_odd_sizes_and_dtypes() -> None:
    noise = StepNoise(torch.randn(4, 3, generator=torch.Generator().manual_seed(2)))
    odd = noise.normal(1, (3,), torch.float64)
    assert odd.shape == (4, 3) and odd.dtype == torch.float64
    assert torch.isfinite(odd).all()
