"""Per-step sampler noise derived from the noise a model is given.

A model's ``generate(noise, conditions)`` must be deterministic and each response must
depend only on its own noise row (so chunked generation equals one-shot generation). A
stochastic sampler needs fresh noise at every step, far more than one row of noise can
hold for 1000 steps. So each row's starting noise x_T is hashed into a 64-bit key, and
the noise of step t, element j of that row is a pure function of (key, t, j): a counter-
based generator built from the "lowbias32" integer hash (C. Wellons) and the Box-Muller
transform. It needs only integer tensor arithmetic, so it gives the same numbers on CPU
and GPU, for any batch composition.
"""

from __future__ import annotations

import math

import torch

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_KEY_ELEMENTS = 8  # floats of x_T hashed into a row's key: 8 x 32 bits of entropy


def _multiply32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """(x * constant) mod 2^32 for int64 tensors in [0, 2^32), without int64 overflow:
    the constant is split in 16-bit halves so no partial product exceeds 2^48."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """The lowbias32 integer hash on int64 tensors holding unsigned 32-bit values."""
    x = x ^ (x >> 16)
    x = _multiply32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _multiply32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _float_bits(values: torch.Tensor) -> torch.Tensor:
    """The float32 bit patterns of ``values`` as int64 in [0, 2^32)."""
    return values.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & _MASK32


class StepNoise:
    """Standard normal noise for sampler steps, keyed by each row's starting noise."""

    def __init__(self, initial_noise: torch.Tensor) -> None:
        rows = initial_noise.detach().flatten(1)
        bits = _float_bits(rows[:, :_KEY_ELEMENTS])
        key_a = torch.full((rows.shape[0],), 0x243F6A88, dtype=torch.int64, device=rows.device)
        key_b = torch.full_like(key_a, 0x85A308D3)
        for column in range(bits.shape[1]):
            key_a = hash32(key_a ^ bits[:, column])
            key_b = hash32((key_b + bits[:, column] + column * _GOLDEN) & _MASK32)
        self.key_a = key_a[:, None]
        self.key_b = key_b[:, None]

    def normal(
        self, step: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """(B, *shape) standard normal noise of sampler step ``step``."""
        n_values = math.prod(shape)
        n_pairs = (n_values + 1) // 2
        step_key = hash32(self.key_a ^ hash32((self.key_b + step * _GOLDEN) & _MASK32))
        counters = hash32(torch.arange(2 * n_pairs, dtype=torch.int64, device=step_key.device))
        bits = hash32(step_key ^ counters[None, :])
        # 23 high bits -> uniforms strictly inside (0, 1), exact in float32 (tails reach
        # 5.8 sigma), then Box-Muller on pairs
        uniform = ((bits >> 9).to(torch.float32) + 0.5) / float(1 << 23)
        radius = torch.sqrt(-2.0 * torch.log(uniform[:, :n_pairs]))
        angle = (2.0 * math.pi) * uniform[:, n_pairs:]
        normal = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        return normal[:, :n_values].to(dtype).view(-1, *shape)
