"""The canonical calosim HDF5 file (``h5``), and the HDF5 pieces CaloChallenge reuses.

Datasets ``responses`` (N, 44, 44) integer photon counts, ``particles`` (N, 9) float32
with attribute ``columns``, optional ``pdg`` (N,) and ``channels`` (N, 5); provenance in
the file attributes.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calosim.data.formats.atomic import _TempFiles
from calosim.data.formats.base import DataSource, _fail, _plain, _table_layout, _TableLayout
from calosim.data.formats.h5chunks import chunk_copy_possible, copy_chunks
from calosim.data.formats.sink import (
    _UINT16_MAX,
    N_CHANNELS,
    Layout,
    _as_json,
    _Rows,
    _Sink,
)
from calosim.data.schema import (
    N_ATTRIBUTES,
    N_PIXELS,
    PARTICLE_COLUMNS,
    PARTICLE_UNITS,
    RESPONSE_SHAPE,
    as_particle_array,
)

# ---------------------------------------------------------------------------- reading


def _dataset(path: Path, file: h5py.File, name: str, n: int | None,
             row_shapes: Sequence[tuple[int, ...]]) -> h5py.Dataset:
    """The dataset ``name``, checked for a row shape in ``row_shapes`` and ``n`` rows."""
    dataset = file[name]
    if not isinstance(dataset, h5py.Dataset):
        raise _fail(path, f"{name!r} is not a dataset")
    if dataset.ndim == 0 or dataset.shape[1:] not in row_shapes:
        expected = " or ".join(str(("N", *shape)).replace("'", "") for shape in row_shapes)
        raise _fail(path, f"{name} has shape {dataset.shape}, expected {expected}")
    if n is not None and dataset.shape[0] != n:
        raise _fail(path, f"{name} holds {dataset.shape[0]} rows but particles hold {n}")
    return dataset


def _optional_dataset(path: Path, file: h5py.File, name: str, n: int,
                      row_shapes: Sequence[tuple[int, ...]]) -> h5py.Dataset | None:
    return _dataset(path, file, name, n, row_shapes) if name in file else None


class _HDF5Source(DataSource):
    """Shared by the canonical and CaloChallenge HDF5 readers: row slicing of datasets."""

    def __init__(self, path: Path, file: h5py.File) -> None:
        super().__init__(path)
        self._file = self._handle = file
        self.attrs = {key: _plain(value) for key, value in file.attrs.items()}

    @classmethod
    def open(cls, path: Path) -> _HDF5Source:
        """Open ``path`` for reading; the file is closed again if it is not a valid one."""
        file = h5py.File(path, "r")
        try:
            return cls(path, file)
        except BaseException:
            file.close()
            raise

    @abstractmethod
    def _rows(self, start: int, stop: int, with_responses: bool) -> tuple[Any, Any, Any]:
        """Rows [start, stop) as stored: particles, pdg or None, responses or None."""

    def _raw_chunks(self, chunk_size: int, with_responses: bool) -> Iterator[tuple[Any, Any, Any]]:
        for start in range(0, self.n, chunk_size):
            particles, pdg, responses = self._rows(start, min(self.n, start + chunk_size),
                                                   with_responses)
            # converted here, where the rows' place in the file is known for errors
            yield (as_particle_array(particles, source=str(self.path), first_row=start), pdg,
                   responses)

    def _particle_table(
        self, n: int | None
    ) -> tuple[h5py.Dataset, _TableLayout, h5py.Dataset | None]:
        table = _dataset(self.path, self._file, "particles", n, [(N_ATTRIBUTES,),
                                                                   (N_ATTRIBUTES + 1,)])
        layout = _table_layout(self.path, table.shape, table.attrs.get("columns"))
        pdg = _optional_dataset(self.path, self._file, "pdg", table.shape[0], [()])
        return table, layout, pdg

    def _table_rows(self, table: h5py.Dataset, layout: _TableLayout, pdg: h5py.Dataset | None,
                    start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        particles, pdg_column = layout.split(table[start:stop])
        return particles, (pdg[start:stop] if pdg is not None else pdg_column)


class _CanonicalH5Source(_HDF5Source):
    format = "h5"
    integer_counts = True

    def __init__(self, path: Path, file: h5py.File) -> None:
        super().__init__(path, file)
        if "particles" not in file:
            raise _fail(path, "no 'particles' dataset (not a calosim data file)")
        self._table, self._layout, self._pdg = self._particle_table(None)
        self._responses = _optional_dataset(path, file, "responses", self.n,
                                            [RESPONSE_SHAPE, (N_PIXELS,)])
        self.has_responses = self._responses is not None

    @property
    def n(self) -> int:
        return int(self._table.shape[0])

    def _rows(self, start: int, stop: int, with_responses: bool) -> tuple[Any, Any, Any]:
        particles, pdg = self._table_rows(self._table, self._layout, self._pdg, start, stop)
        responses = self._responses[start:stop] if with_responses else None
        return particles, pdg, responses


# ---------------------------------------------------------------------------- writing

_OPTIONAL = ("responses", "pdg", "channels")
# Rows per chunk of the per-row tables: calosim.simulators.base.RANDOM_BLOCK, so every
# shard of a run (whole random blocks) ends on a chunk boundary and merging can copy
# chunks (see h5chunks). Responses, 64 rows a chunk, divide it too.
_TABLE_CHUNK = 1024


def _h5_attribute(value: Any) -> Any:
    """HDF5 stores numbers, strings and arrays of them; anything else is kept as JSON."""
    if isinstance(value, (str, bytes, bool, int, float, np.generic)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return array
        if array.dtype.kind == "U":
            return [str(v) for v in array.ravel()] if array.ndim == 1 else json.dumps(value)
    return _as_json(value)


def _resizable(group: h5py.Group, name: str, dtype: Any, row_shape: tuple[int, ...],
               chunk_rows: int) -> h5py.Dataset:
    return group.create_dataset(
        name, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=dtype,
        chunks=(chunk_rows, *row_shape), compression="gzip", compression_opts=4, shuffle=True,
        fletcher32=True,  # a checksum per chunk, so corrupted data fails loudly on reading
    )


def _extend(dataset: h5py.Dataset, values: np.ndarray) -> None:
    old = dataset.shape[0]
    dataset.resize(old + len(values), axis=0)
    dataset[old:] = values


class _HDF5Sink(_Sink):
    """The canonical HDF5 file; responses start as uint16 and widen to uint32 if needed."""

    empty_layout = (True, False, False)

    def __init__(self, path: Path, attrs: Mapping[str, Any], temps: _TempFiles) -> None:
        super().__init__(path, attrs, temps)
        self.file = h5py.File(temps.reserve(path), "w")
        for key, value in self.attrs.items():
            self.file.attrs[key] = _h5_attribute(value)
        self._created = False

    def _create(self, has_responses: bool, has_pdg: bool, has_channels: bool) -> None:
        particles = _resizable(self.file, "particles", np.float32, (N_ATTRIBUTES,), _TABLE_CHUNK)
        particles.attrs["columns"] = list(PARTICLE_COLUMNS)
        particles.attrs["units"] = [PARTICLE_UNITS[c] for c in PARTICLE_COLUMNS]
        if has_responses:
            self._create_responses()
        if has_pdg:
            _resizable(self.file, "pdg", np.int32, (), _TABLE_CHUNK)
        if has_channels:
            _resizable(self.file, "channels", np.float32, (N_CHANNELS,), _TABLE_CHUNK)
        self._created = True

    def _create_responses(self) -> None:
        _resizable(self.file, "responses", np.uint16, RESPONSE_SHAPE, 64).attrs["unit"] = "photons"

    def _append_responses(self, counts: np.ndarray) -> None:
        dataset = self.file["responses"]
        if dataset.dtype == np.uint16:
            if counts.size and counts.max() > _UINT16_MAX:
                dataset = self._widen(dataset)
            else:
                # Narrowed here, as HDF5's own type conversion would do it more slowly.
                counts = counts.astype(np.uint16)
        _extend(dataset, counts)

    def _widen(self, dataset: h5py.Dataset) -> h5py.Dataset:
        """Copy the uint16 responses written so far into a uint32 dataset of the same name."""
        wide = _resizable(self.file, "responses_widening", np.uint32, dataset.shape[1:],
                          dataset.chunks[0])
        wide.attrs.update(dataset.attrs)
        wide.resize(dataset.shape[0], axis=0)
        step = dataset.chunks[0] * 64
        for start in range(0, dataset.shape[0], step):
            wide[start:start + step] = dataset[start:start + step]
        del self.file["responses"]
        self.file.move("responses_widening", "responses")
        return self.file["responses"]

    def append(self, rows: _Rows) -> None:
        if not self._created:
            self._create(*rows.layout())
        _extend(self.file["particles"], rows.particles)
        if rows.responses is not None:
            self._append_responses(rows.responses)
        if rows.pdg is not None:
            _extend(self.file["pdg"], rows.pdg)
        if rows.channels is not None:
            _extend(self.file["channels"], rows.channels)

    def copy_rows(self, source: Path, layout: Layout | None) -> tuple[int, Layout] | None:
        try:
            file = h5py.File(source, "r")
        except OSError:
            return None  # not HDF5: the caller's reader says what is wrong with it
        with file:
            found = ("responses" in file, "pdg" in file, "channels" in file)
            names = ["particles", *(n for n, on in zip(_OPTIONAL, found, strict=True) if on)]
            if layout not in (None, found):
                return None
            created_here = not self._created
            if created_here:
                self._create(*found)
            if not chunk_copy_possible(file, self.file, names):
                if created_here:  # leave the datasets to the caller's first append
                    for name in names:
                        del self.file[name]
                    self._created = False
                return None
            for name in names:
                copy_chunks(file[name], self.file[name])
            return int(file["particles"].shape[0]), found

    def finish(self) -> None:
        if not self._created:
            self._create(*self.empty_layout)
        self.file.close()

    def abort(self) -> None:
        self.file.close()
