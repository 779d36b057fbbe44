"""CaloChallenge-style HDF5 (``calochallenge``): ``incident_energies`` (N, 1) in MeV and
``showers`` (N, 1936).

calosim also stores ``particles`` (and ``pdg``) in it, so a round trip is lossless while
the file stays a valid CaloChallenge file. Without them, the particles are rebuilt from
the incident energies (see CALOCHALLENGE_NOTE_ATTR).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calosim.data.formats.atomic import _TempFiles
from calosim.data.formats.base import _fail
from calosim.data.formats.hdf5 import _dataset, _extend, _HDF5Sink, _HDF5Source, _resizable
from calosim.data.formats.sink import Layout, _Rows
from calosim.data.schema import N_ATTRIBUTES, N_PIXELS, PARTICLE_COLUMNS, RESPONSE_SHAPE

# The attribute that says how particles were filled in for a file without a particle table.
CALOCHALLENGE_NOTE_ATTR = "particles_filled_from"
_ENERGY_UNITS_IN_GEV = {"keV": 1e-6, "MeV": 1e-3, "GeV": 1.0, "TeV": 1e3}


class _CaloChallengeSource(_HDF5Source):
    format = "calochallenge"

    def __init__(self, path: Path, file: h5py.File) -> None:
        super().__init__(path, file)
        self._showers = _dataset(path, file, "showers", None, [(N_PIXELS,), RESPONSE_SHAPE])
        self._energies = _dataset(path, file, "incident_energies", self.n, [(1,), ()])
        # The unit attributes describe this file's layout, not the data: not passed on.
        unit = str(self.attrs.pop("incident_energies_unit", "MeV"))
        self.attrs.pop("showers_unit", None)
        if unit not in _ENERGY_UNITS_IN_GEV:
            raise _fail(path, f"unknown incident_energies_unit {unit!r}")
        self._to_gev = _ENERGY_UNITS_IN_GEV[unit]
        self.has_responses = True
        self._table = None
        if "particles" in file:
            self._table, self._layout, self._pdg = self._particle_table(self.n)
        else:
            self.attrs[CALOCHALLENGE_NOTE_ATTR] = (
                f"incident_energies ({unit}): Energy and Pz set to the incident energy in GeV;"
                " Vx, Vy, Vz, Px, Py, mass and charge set to 0"
            )

    @property
    def n(self) -> int:
        return int(self._showers.shape[0])

    def _rows(self, start: int, stop: int, with_responses: bool) -> tuple[Any, Any, Any]:
        if self._table is not None:
            particles, pdg = self._table_rows(self._table, self._layout, self._pdg, start, stop)
        else:
            energies = np.asarray(self._energies[start:stop], dtype=np.float64).reshape(-1)
            particles = np.zeros((stop - start, N_ATTRIBUTES))
            particles[:, PARTICLE_COLUMNS.index("Energy")] = energies * self._to_gev
            particles[:, PARTICLE_COLUMNS.index("Pz")] = energies * self._to_gev
            pdg = None
        return particles, pdg, (self._showers[start:stop] if with_responses else None)


class _CaloChallengeSink(_HDF5Sink):
    """CaloChallenge keys (energies in MeV, flat showers) plus the full particle table."""

    def __init__(self, path: Path, attrs: Mapping[str, Any], temps: _TempFiles) -> None:
        super().__init__(path, attrs, temps)
        self.file.attrs["incident_energies_unit"] = "MeV"
        self.file.attrs["showers_unit"] = "photons"

    def _create_responses(self) -> None:
        _resizable(self.file, "incident_energies", np.float64, (1,), 4096)
        _resizable(self.file, "showers", np.float32, (N_PIXELS,), 64)

    def append(self, rows: _Rows) -> None:
        if rows.responses is None:
            raise _fail(self.path, "a CaloChallenge file needs responses (showers)")
        super().append(rows)
        energies_mev = rows.particles[:, [PARTICLE_COLUMNS.index("Energy")]] * np.float64(1e3)
        _extend(self.file["incident_energies"], energies_mev)

    def copy_rows(self, source: Path, layout: Layout | None) -> tuple[int, Layout] | None:
        return None  # its datasets are not the canonical ones a shard holds

    def _append_responses(self, counts: np.ndarray) -> None:
        _extend(self.file["showers"], counts.reshape(len(counts), N_PIXELS).astype(np.float32))
