"""The particle table and response image every part of calosim agrees on.

Units: Energy, Px, Py, Pz in GeV; vertex Vx, Vy, Vz in cm (ALICE O2 / Geant4 default
length unit); mass in MeV; charge in units of e. Responses are 44 x 44 images of
photon counts, indexed [row x, column y].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from calosim.errors import DataFormatError

PARTICLE_COLUMNS: tuple[str, ...] = ("Energy", "Vx", "Vy", "Vz", "Px", "Py", "Pz", "mass", "charge")
PARTICLE_UNITS: dict[str, str] = {
    "Energy": "GeV", "Vx": "cm", "Vy": "cm", "Vz": "cm",
    "Px": "GeV", "Py": "GeV", "Pz": "GeV", "mass": "MeV", "charge": "e",
}
N_ATTRIBUTES = len(PARTICLE_COLUMNS)
IMAGE_SIZE = 44
RESPONSE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE)
N_PIXELS = IMAGE_SIZE * IMAGE_SIZE


def as_particle_array(particles: Any, *, source: str = "particles") -> np.ndarray:
    """Return particles as a C-contiguous (N, 9) float32 array in PARTICLE_COLUMNS order.

    Accepts an (N, 9) array (an (N, 10) array's 10th column, the PDG id, is dropped),
    a numpy structured array, a mapping of column name -> values (dict, pandas
    DataFrame, awkward record array). Raises DataFormatError naming ``source`` when a
    column is missing or a value is not finite.
    """
    if isinstance(particles, np.ndarray) and particles.dtype.names:
        particles = {name: particles[name] for name in particles.dtype.names}
    if isinstance(particles, Mapping) or hasattr(particles, "columns") or _is_awkward(particles):
        names = set(_column_names(particles))
        missing = [c for c in PARTICLE_COLUMNS if c not in names]
        if missing:
            raise DataFormatError(f"{source}: missing particle column(s) {', '.join(missing)}")
        array = np.stack([np.asarray(particles[c], dtype=np.float64) for c in PARTICLE_COLUMNS], 1)
    else:
        array = np.asarray(particles, dtype=np.float64)
        if array.ndim == 1 and array.size == N_ATTRIBUTES:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] not in (N_ATTRIBUTES, N_ATTRIBUTES + 1):
            raise DataFormatError(
                f"{source}: expected particles of shape (N, 9) or (N, 10), got {array.shape}"
            )
        array = array[:, :N_ATTRIBUTES]
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array).all(axis=1)).sum())
        raise DataFormatError(f"{source}: {bad} particle row(s) hold NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


def _is_awkward(obj: Any) -> bool:
    return type(obj).__module__.startswith("awkward")


def _column_names(table: Any) -> list[str]:
    if hasattr(table, "fields"):
        return list(table.fields)
    if hasattr(table, "columns"):
        return [str(c) for c in table.columns]
    return [str(k) for k in table.keys()]
