"""numpy archives (``npz``): the research pair, or one particle-list npz.

The pair is ``*_responses.npz`` + ``*_particles.npz`` (key ``arr_0``; particles have 9
columns, or 10 with the PDG id last). A particle-list npz holds ``arr_0`` or one array
per named column. Members are streamed row by row, so memory stays flat in N.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import numpy as np

from calosim.data.formats.atomic import _TempFiles
from calosim.data.formats.base import (
    DataSource,
    _fail,
    _table_layout,
    _TableLayout,
    _translate_errors,
)
from calosim.data.formats.sink import _UINT16_MAX, _Rows, _Sink
from calosim.data.schema import (
    N_ATTRIBUTES,
    N_PIXELS,
    PARTICLE_COLUMNS,
    RESPONSE_SHAPE,
    as_particle_array,
)

NPZ_PAIR_NAMES = ("data_nonrandom_responses.npz", "data_nonrandom_particles.npz")


def npz_pair_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(responses file, particles file) of the npz pair that ``path`` names.

    ``path`` is a directory (holding data_nonrandom_*.npz), either file of a pair
    (``*responses.npz`` / ``*particles.npz``), or ``stem.npz`` meaning
    ``stem_responses.npz`` + ``stem_particles.npz``.
    """
    path = Path(path)
    if path.is_dir():
        return path / NPZ_PAIR_NAMES[0], path / NPZ_PAIR_NAMES[1]
    name = path.name
    if name.endswith("responses.npz"):
        return path, path.with_name(name[: -len("responses.npz")] + "particles.npz")
    if name.endswith("particles.npz"):
        return path.with_name(name[: -len("particles.npz")] + "responses.npz"), path
    stem = path.with_suffix("")
    return (stem.with_name(stem.name + "_responses.npz"),
            stem.with_name(stem.name + "_particles.npz"))


# ---------------------------------------------------------------------------- reading


class _NpyMember:
    """Rows of one .npy member of an npz archive, read in sequence without loading it all."""

    def __init__(self, archive: zipfile.ZipFile, member: str) -> None:
        self._stream: IO[bytes] = archive.open(member)
        try:
            self.shape, self._fortran_order, self.dtype = self._read_header(member)
        except BaseException:
            self._stream.close()
            raise
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._whole: np.ndarray | None = None
        self._next_row = 0

    def _read_header(self, member: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        version = np.lib.format.read_magic(self._stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(self._stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(self._stream)
        else:
            raise ValueError(f"{member}: unsupported .npy format version {version}")
        if dtype.hasobject:
            raise ValueError(f"{member} holds Python objects, which calosim does not unpickle")
        return shape, fortran_order, dtype

    def __enter__(self) -> _NpyMember:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stream.close()

    def _read_exactly(self, n_bytes: int) -> bytes:
        data = self._stream.read(n_bytes)
        if len(data) != n_bytes:
            raise EOFError("npz member ends early (truncated file)")
        return data

    def read(self, n_rows: int) -> np.ndarray:
        if self._fortran_order:
            # Fortran order stores columns first, so rows cannot be streamed: load it once.
            if self._whole is None:
                size = int(np.prod(self.shape)) * self.dtype.itemsize
                data = np.frombuffer(self._read_exactly(size), dtype=self.dtype)
                self._whole = data.reshape(self.shape, order="F")
            rows = self._whole[self._next_row:self._next_row + n_rows]
        else:
            data = self._read_exactly(n_rows * self._row_bytes)
            rows = np.frombuffer(data, dtype=self.dtype).reshape(n_rows, *self.shape[1:])
        self._next_row += n_rows
        return rows


def _npz_members(archive: zipfile.ZipFile) -> list[str]:
    return [name[:-4] for name in archive.namelist() if name.endswith(".npy")]


def _npz_header(path: Path, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with zipfile.ZipFile(path) as archive, _NpyMember(archive, member + ".npy") as reader:
        return reader.shape, reader.dtype


def _main_member(path: Path, members: list[str]) -> str:
    if "arr_0" in members:
        return "arr_0"
    if len(members) == 1:
        return members[0]
    raise _fail(path, f"expected one array 'arr_0', found {', '.join(members) or 'none'}")


class _NpzSource(DataSource):
    """The research npz pair, or a single particle-list npz."""

    format = "npz"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        responses_path, particles_path = npz_pair_paths(path)
        if path.is_file() and path not in (responses_path, particles_path):
            particles_path, responses_path = path, None  # a single particle-list npz
        elif not particles_path.is_file():
            if path.is_dir():
                raise _fail(path, f"directory holds no {particles_path.name}")
            if path.exists():
                raise _fail(path, f"partner file {particles_path.name} of the npz pair not found")
            raise _fail(path, "no such file")
        elif not responses_path.is_file():
            if path == responses_path:
                raise _fail(path, "no such file")
            responses_path = None  # the particles of a pair, read as a particle list
        self._particles_path, self._responses_path = particles_path, responses_path
        self._particle_members, self._layout, self._n = self._find_particle_members()
        self.has_responses = responses_path is not None
        if self.has_responses:
            self._responses_member = _main_member(responses_path, self._members(responses_path))
            shape, _ = _npz_header(responses_path, self._responses_member)
            if len(shape) == 0 or shape[1:] not in (RESPONSE_SHAPE, (N_PIXELS,)):
                raise _fail(responses_path, f"responses have shape {shape}, expected (N, 44, 44)")
            if shape[0] != self._n:
                raise _fail(path, f"{shape[0]} responses for {self._n} particles "
                                  f"in {particles_path.name}")

    def _members(self, path: Path) -> list[str]:
        with _translate_errors(path), zipfile.ZipFile(path) as archive:
            return _npz_members(archive)

    def _find_particle_members(self) -> tuple[dict[str, str], _TableLayout | None, int]:
        """(key -> member, layout, N): one array per named column (layout None), or
        {"table": member} for a single (N, 9 or 10) array."""
        path = self._particles_path
        members = self._members(path)
        with _translate_errors(path):
            if all(c in members for c in PARTICLE_COLUMNS):
                names = list(PARTICLE_COLUMNS) + ["pdg"] * ("pdg" in members)
                shapes = {_npz_header(path, name)[0] for name in names}
                if len(shapes) != 1 or len(next(iter(shapes))) != 1:
                    raise _fail(path, "named particle arrays must all be 1-D of one length")
                return {name: name for name in names}, None, next(iter(shapes))[0]
            member = _main_member(path, members)
            shape, _ = _npz_header(path, member)
            return {"table": member}, _table_layout(path, shape, None), shape[0]

    @property
    def n(self) -> int:
        return int(self._n)

    def _raw_chunks(self, chunk_size: int, with_responses: bool) -> Iterator[tuple[Any, Any, Any]]:
        with ExitStack() as stack:
            particle_archive = stack.enter_context(zipfile.ZipFile(self._particles_path))
            readers = {key: stack.enter_context(_NpyMember(particle_archive, member + ".npy"))
                       for key, member in self._particle_members.items()}
            responses = None
            if with_responses:
                response_archive = stack.enter_context(zipfile.ZipFile(self._responses_path))
                responses = stack.enter_context(
                    _NpyMember(response_archive, self._responses_member + ".npy"))
            for start in range(0, self.n, chunk_size):
                rows = min(chunk_size, self.n - start)
                if self._layout is not None:
                    particles, pdg = self._layout.split(readers["table"].read(rows))
                else:
                    particles = {c: readers[c].read(rows) for c in PARTICLE_COLUMNS}
                    pdg = readers["pdg"].read(rows) if "pdg" in readers else None
                # converted here, where the rows' place in the file is known for errors
                particles = as_particle_array(particles, source=str(self._particles_path),
                                              first_row=start)
                yield particles, pdg, (responses.read(rows) if responses else None)


# ---------------------------------------------------------------------------- writing


class _NpzSink(_Sink):
    """The research npz pair (or one particle-list npz when there are no responses).

    npz members cannot grow, so rows go to unnamed scratch files and are streamed into
    the archives at the end; memory stays flat in N.
    """

    def __init__(self, path: Path, attrs: Mapping[str, Any], temps: _TempFiles) -> None:
        super().__init__(path, attrs, temps)
        self._scratch: dict[str, IO[bytes]] = {}
        self._n = 0
        self._max_count = 0
        self._has_pdg = False

    def _scratch_file(self, name: str) -> IO[bytes]:
        if name not in self._scratch:
            directory = self.path if self.path.is_dir() else self.path.parent
            directory.mkdir(parents=True, exist_ok=True)
            self._scratch[name] = tempfile.TemporaryFile(dir=directory)
        return self._scratch[name]

    def append(self, rows: _Rows) -> None:
        self._has_pdg = rows.pdg is not None
        if rows.pdg is None:
            table = rows.particles
        else:  # the research convention: the PDG id as a 10th column (float64 holds it exactly)
            table = np.column_stack([rows.particles.astype(np.float64), rows.pdg])
        self._scratch_file("particles").write(table.tobytes())
        if rows.responses is not None:
            self._scratch_file("responses").write(rows.responses.tobytes())
            self._max_count = max(self._max_count, int(rows.responses.max(initial=0)))
        self._n += len(rows.particles)

    def finish(self) -> None:
        responses_path, particles_path = npz_pair_paths(self.path)
        has_responses = "responses" in self._scratch or self._n == 0
        if not has_responses and not self.path.is_dir():
            particles_path = self.path  # a plain particle list keeps the name it was given
        n_columns = N_ATTRIBUTES + self._has_pdg
        particle_dtype = np.dtype(np.float64 if self._has_pdg else np.float32)
        self._write_member(particles_path, "particles", particle_dtype, particle_dtype,
                           (self._n, n_columns))
        if has_responses:
            stored = np.uint16 if self._max_count <= _UINT16_MAX else np.uint32
            self._write_member(responses_path, "responses", np.dtype(np.uint32),
                               np.dtype(stored), (self._n, *RESPONSE_SHAPE))
        self.abort()

    def _write_member(self, target: Path, scratch_name: str, scratch_dtype: np.dtype,
                      stored_dtype: np.dtype, shape: tuple[int, ...]) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(stored_dtype), "fortran_order": False,
                  "shape": shape}
        row_bytes = int(np.prod(shape[1:])) * scratch_dtype.itemsize
        scratch = self._scratch_file(scratch_name)
        scratch.seek(0)
        with zipfile.ZipFile(self.temps.reserve(target), "w", compression=zipfile.ZIP_DEFLATED,
                             allowZip64=True) as archive, \
                archive.open("arr_0.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            while block := scratch.read(4096 * row_bytes):
                member.write(np.frombuffer(block, scratch_dtype).astype(stored_dtype).tobytes())

    def abort(self) -> None:
        for scratch in self._scratch.values():
            scratch.close()
        self._scratch.clear()
