"""Transforms every model keeps with it: log(1 + counts) and particle standardisation.

All functions work on numpy arrays and on torch tensors (torch is imported only when a
tensor is passed, so reading data does not pay for importing it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from calosim.data.schema import N_ATTRIBUTES, PARTICLE_COLUMNS, as_particle_array
from calosim.errors import CalosimError

Array = TypeVar("Array")  # numpy.ndarray or torch.Tensor: a function returns what it was given


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def log_counts(x: Array) -> Array:
    """log(1 + x): photon counts to the space most ZDC models work in."""
    return x.log1p() if _is_tensor(x) else np.log1p(x)  # type: ignore[attr-defined]


def counts_from_log(y: Array) -> Array:
    """exp(y) - 1 clamped at 0: back from log space to (non-negative) photon counts."""
    if _is_tensor(y):
        return y.expm1().clamp(min=0)  # type: ignore[attr-defined]
    return np.maximum(np.expm1(y), 0)


@dataclass(frozen=True)
class ParticleStandardiser:
    """(x - means) / scales per particle attribute, in PARTICLE_COLUMNS order."""

    means: np.ndarray
    scales: np.ndarray

    def __post_init__(self) -> None:
        means = np.asarray(self.means, dtype=np.float64)
        scales = np.asarray(self.scales, dtype=np.float64)
        if means.shape != (N_ATTRIBUTES,) or scales.shape != (N_ATTRIBUTES,):
            raise CalosimError(f"standardiser needs {N_ATTRIBUTES} means and {N_ATTRIBUTES} "
                               f"scales, got {means.shape} and {scales.shape}")
        if not (np.isfinite(means).all() and np.isfinite(scales).all() and (scales > 0).all()):
            raise CalosimError("standardiser means must be finite and scales finite and positive")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "scales", scales)

    @classmethod
    def fit(cls, particles: Any, min_scale: float = 1e-12) -> ParticleStandardiser:
        """Means and standard deviations of ``particles`` (N, 9).

        A column whose spread is below ``min_scale`` (a constant column) gets scale 1, so
        it maps to 0 rather than dividing by zero.
        """
        array = as_particle_array(particles).astype(np.float64)
        if len(array) == 0:
            raise CalosimError("cannot fit a standardiser to zero particles")
        scales = array.std(axis=0)
        return cls(array.mean(axis=0), np.where(scales < min_scale, 1.0, scales))

    def _constants(self, like: Any) -> tuple[Any, Any]:
        if _is_tensor(like):
            import torch

            dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
            return (torch.as_tensor(self.means, dtype=dtype, device=like.device),
                    torch.as_tensor(self.scales, dtype=dtype, device=like.device))
        dtype = like.dtype if np.issubdtype(like.dtype, np.floating) else np.float64
        return self.means.astype(dtype), self.scales.astype(dtype)

    def transform(self, x: Array) -> Array:
        """Standardise particles (..., 9); keeps float32 as float32."""
        x = x if _is_tensor(x) else np.asarray(x)
        means, scales = self._constants(x)
        return (x - means) / scales

    def inverse(self, z: Array) -> Array:
        """Undo ``transform``."""
        z = z if _is_tensor(z) else np.asarray(z)
        means, scales = self._constants(z)
        return z * scales + means

    def to_dict(self) -> dict[str, list[float] | list[str]]:
        """Plain lists, for model files and JSON."""
        return {"columns": list(PARTICLE_COLUMNS), "means": self.means.tolist(),
                "scales": self.scales.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float] | Sequence[str]]) -> ParticleStandardiser:
        """Inverse of ``to_dict``."""
        columns = list(data.get("columns", PARTICLE_COLUMNS))
        if columns != list(PARTICLE_COLUMNS):
            raise CalosimError(f"standardiser columns {columns} differ from "
                               f"{list(PARTICLE_COLUMNS)}")
        try:
            return cls(np.asarray(data["means"], dtype=np.float64),
                       np.asarray(data["scales"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalosimError(f"malformed standardiser ({exc})") from exc


# The conditional-feature means / standard deviations of the deployed ALICE O2 ZN model.
ALICE_DEPLOYED = ParticleStandardiser(
    means=np.array([1366.7, -7.8e-8, 1.45e-7, 0.00107, 0.0099, 0.0199, 39.1, 353.7, 0.0629]),
    scales=np.array([1259.8, 4.15e-6, 4.42e-6, 0.0245, 0.2346, 0.2581, 1858.3, 455.0, 0.2565]),
)
