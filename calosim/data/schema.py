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


def as_particle_array(particles: Any, *, source: str = "particles",
                      first_row: int = 0) -> np.ndarray:
    """Return particles as a C-contiguous (N, 9) float32 array in PARTICLE_COLUMNS order.

    Accepts an (N, 9) array (an (N, 10) array's 10th column, the PDG id, is dropped),
    a numpy structured array, a mapping of column name -> values (dict, pandas
    DataFrame, awkward record array). Raises a one-line DataFormatError naming
    ``source`` when a column is missing, values are not real numbers (complex, boolean,
    text) or a value is NaN, infinite or beyond the float32 range; rows are counted
    from ``first_row``. Physical ranges are checked by calosim.data.particle_checks.
    """
    if isinstance(particles, np.ndarray) and particles.dtype.names:
        particles = {name: particles[name] for name in particles.dtype.names}
    if isinstance(particles, Mapping) or hasattr(particles, "columns") or _is_awkward(particles):
        names = set(_column_names(particles))
        missing = [c for c in PARTICLE_COLUMNS if c not in names]
        if missing:
            raise DataFormatError(f"{source}: missing particle column(s) {', '.join(missing)}")
        columns = [_real_values(particles[c], f"{source}: column {c}") for c in PARTICLE_COLUMNS]
        shapes = {column.shape for column in columns}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise DataFormatError(f"{source}: particle columns must be 1-D and of one length, "
                                  f"got shapes {', '.join(sorted(map(str, shapes)))}")
        array = np.stack(columns, 1)
    else:
        array = _real_values(particles, f"{source}: particles")
        if array.ndim == 1 and array.size == N_ATTRIBUTES:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] not in (N_ATTRIBUTES, N_ATTRIBUTES + 1):
            raise DataFormatError(
                f"{source}: expected particles of shape (N, 9) or (N, 10), got {array.shape}"
            )
        array = array[:, :N_ATTRIBUTES]
    # values beyond float32 become inf here, and are refused below with the non-finite ones
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = ~finite.all(axis=1)
        row = int(bad_rows.argmax())
        column = PARTICLE_COLUMNS[int((~finite[row]).argmax())]
        raise DataFormatError(
            f"{source}: {int(bad_rows.sum())} particle row(s) hold NaN, infinite or values "
            f"beyond the float32 range, the first row {first_row + row} (0-based), in {column}"
        )
    return array


def _real_values(values: Any, what: str) -> np.ndarray:
    """``values`` as a numpy array of integers or real floats, else a DataFormatError."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        raise DataFormatError(f"{what} cannot be read as an array of numbers ({message})") from None
    if array.dtype.kind not in "iuf":
        raise DataFormatError(f"{what} are of type {array.dtype}, expected real numbers")
    return array


def _is_awkward(obj: Any) -> bool:
    return type(obj).__module__.startswith("awkward")


def _column_names(table: Any) -> list[str]:
    if hasattr(table, "fields"):
        return list(table.fields)
    if hasattr(table, "columns"):
        return [str(c) for c in table.columns]
    return [str(k) for k in table.keys()]
