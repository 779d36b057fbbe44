"""Reading and writing ZDC data files, chunk by chunk so memory stays flat in N.

Formats, by the names ``format=`` takes:

- ``h5``: the canonical calosim file. Datasets ``responses`` (N, 44, 44) integer photon
  counts, ``particles`` (N, 9) float32 with attribute ``columns``, optional ``pdg`` (N,)
  and ``channels`` (N, 5); provenance in the file attributes.
- ``calochallenge``: CaloChallenge-style HDF5, ``incident_energies`` (N, 1) in MeV and
  ``showers`` (N, 1936). calosim also stores ``particles`` (and ``pdg``) in it, so a
  round trip is lossless while the file stays a valid CaloChallenge file.
- ``root``: a TTree (``zdc``) with one branch per particle attribute, optional ``pdg``
  and a fixed-size 1936-value ``responses`` branch; attributes as JSON in a TObjString.
- ``npz``: the research pair ``*_responses.npz`` + ``*_particles.npz`` (key ``arr_0``;
  particles have 9 columns, or 10 with the PDG id last), or one particle-list npz
  (``arr_0`` or one array per named column).
- ``csv``: particle lists only, a header naming the 9 columns (and optionally ``pdg``).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import tempfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import h5py
import numpy as np

from calosim._version import __version__
from calosim.data.schema import (
    N_ATTRIBUTES,
    N_PIXELS,
    PARTICLE_COLUMNS,
    PARTICLE_UNITS,
    RESPONSE_SHAPE,
    as_particle_array,
)
from calosim.errors import CalosimError, DataFormatError

FORMATS: tuple[str, ...] = ("h5", "calochallenge", "root", "npz", "csv")
_FORMAT_ALIASES = {"hdf5": "h5", "canonical": "h5", "calo": "calochallenge"}
_SUFFIX_FORMATS = {".h5": "h5", ".hdf5": "h5", ".hdf": "h5", ".root": "root", ".npz": "npz",
                   ".csv": "csv"}

# File attribute names every calosim writer sets (version, creator) or records (seed, simulator).
ATTR_VERSION = "calosim_version"
ATTR_CREATOR = "creator"
ATTR_SEED = "seed"
ATTR_SIMULATOR = "simulator"

ROOT_TREE = "zdc"
ROOT_ATTRS_KEY = "calosim_attrs"
NPZ_PAIR_NAMES = ("data_nonrandom_responses.npz", "data_nonrandom_particles.npz")
DEFAULT_CHUNK_SIZE = 8192
N_CHANNELS = 5
CALOCHALLENGE_NOTE_ATTR = "particles_filled_from"
_MAX_COUNT = np.iinfo(np.uint32).max
_UINT16_MAX = np.iinfo(np.uint16).max
_ENERGY_UNITS_IN_GEV = {"keV": 1e-6, "MeV": 1e-3, "GeV": 1.0, "TeV": 1e3}


@dataclass(frozen=True)
class ParticleChunk:
    """Consecutive particles of a file: rows [start, start + len(particles))."""

    start: int
    particles: np.ndarray  # (n, 9) float32, PARTICLE_COLUMNS order
    pdg: np.ndarray | None  # (n,) int32

    def __len__(self) -> int:
        return len(self.particles)


@dataclass(frozen=True)
class DataChunk(ParticleChunk):
    """A ParticleChunk with the responses of those particles, when the file holds them."""

    responses: np.ndarray | None  # (n, 44, 44) float32 photon counts


# ---------------------------------------------------------------------------- errors


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# UnicodeDecodeError (bad CSV text) is a ValueError; zipfile.BadZipFile is an Exception.
_IO_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


@contextmanager
def _translate_errors(path: Path, action: str = "read") -> Iterator[None]:
    """Turn library errors (h5py, uproot, zipfile, numpy) into one-line DataFormatErrors."""
    try:
        yield
    except CalosimError:
        raise
    except Exception as exc:
        from_io_library = type(exc).__module__.split(".")[0] in ("h5py", "uproot", "awkward")
        if isinstance(exc, _IO_ERRORS) or from_io_library:
            raise DataFormatError(f"{path}: cannot {action} file ({_one_line(exc)})") from exc
        raise


def _fail(path: Path, problem: str) -> DataFormatError:
    return DataFormatError(f"{path}: {problem}")


# ----------------------------------------------------------------- format detection


def _format_name(format: str) -> str:
    name = _FORMAT_ALIASES.get(format.lower(), format.lower())
    if name not in FORMATS:
        raise CalosimError(f"unknown data format {format!r}; expected one of {', '.join(FORMATS)}")
    return name


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        return "h5"
    if magic.startswith(b"root"):
        return "root"
    if magic.startswith(b"PK\x03\x04"):
        return "npz"
    return None


def _hdf5_flavour(path: Path) -> str:
    with _translate_errors(path), h5py.File(path, "r") as file:
        return "calochallenge" if "showers" in file else "h5"


def detect_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format of an existing data file (or npz pair directory), one of FORMATS.

    ``format`` overrides the guess. Otherwise the extension decides (an HDF5 file holding
    ``showers`` is CaloChallenge), and for unknown extensions the file's first bytes.
    """
    path = Path(path)
    if format is not None:
        return _format_name(format)
    if path.is_dir():
        return "npz"
    name = _SUFFIX_FORMATS.get(path.suffix.lower())
    if name == "npz":
        return name  # the npz reader finds the other file of a pair, or says it is missing
    if not path.exists():
        raise _fail(path, "no such file")
    if name is None:
        with _translate_errors(path):
            name = _sniff(path)
        if name is None:
            raise _fail(path, f"cannot tell the data format; give one of {', '.join(FORMATS)}")
    return _hdf5_flavour(path) if name == "h5" else name


def output_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format a writer uses for ``path``: ``format`` if given, else from the extension."""
    path = Path(path)
    if format is not None:
        name = _format_name(format)
    elif path.is_dir():
        name = "npz"
    else:
        name = _SUFFIX_FORMATS.get(path.suffix.lower(), "")
        if not name:
            raise _fail(path, "cannot tell the output format from the extension; give format=")
    if name == "csv":
        raise _fail(path, "calosim reads particle lists from CSV but does not write CSV")
    return name


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


# ------------------------------------------------------------------ checking values


@dataclass(frozen=True)
class _TableLayout:
    """Where the 9 attributes (and the PDG id, if any) sit in a particle table."""

    attribute_columns: tuple[int, ...]
    pdg_column: int | None

    def split(self, table: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        attributes = table[:, list(self.attribute_columns)]
        return attributes, (None if self.pdg_column is None else table[:, self.pdg_column])


def _table_layout(path: Path, shape: tuple[int, ...], names: Sequence[Any] | None) -> _TableLayout:
    if names is None:
        if len(shape) != 2 or shape[1] not in (N_ATTRIBUTES, N_ATTRIBUTES + 1):
            raise _fail(path, f"particles have shape {shape}, expected (N, 9) or (N, 10)")
        pdg_column = N_ATTRIBUTES if shape[1] == N_ATTRIBUTES + 1 else None
        return _TableLayout(tuple(range(N_ATTRIBUTES)), pdg_column)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if len(shape) != 2 or shape[1] != len(names):
        raise _fail(path, f"particles have shape {shape} but {len(names)} column names")
    missing = [c for c in PARTICLE_COLUMNS if c not in names]
    if missing:
        raise _fail(path, f"missing particle column(s) {', '.join(missing)}")
    pdg_column = names.index("pdg") if "pdg" in names else None
    return _TableLayout(tuple(names.index(c) for c in PARTICLE_COLUMNS), pdg_column)


def _checked_pdg(path: Path, raw: Any, n: int) -> np.ndarray:
    pdg = np.asarray(raw)
    if pdg.shape != (n,):
        raise _fail(path, f"pdg has shape {pdg.shape}, expected ({n},)")
    integral = np.issubdtype(pdg.dtype, np.integer) or (
        np.issubdtype(pdg.dtype, np.floating) and np.isfinite(pdg).all()
        and bool((pdg == np.rint(pdg)).all())
    )
    if not integral:
        raise _fail(path, "pdg holds values that are not integer PDG ids")
    if n and np.abs(pdg).max() > np.iinfo(np.int32).max:
        raise _fail(path, "pdg holds values beyond the int32 range")
    return pdg.astype(np.int32)


def _checked_counts(path: Path, raw: Any, n: int, *, integer: bool) -> np.ndarray:
    """Photon counts as a non-negative (n, 44, 44) array of the dtype given (not copied)."""
    counts = np.asarray(raw)
    if not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
        raise _fail(path, f"responses are of type {counts.dtype}, expected numbers")
    if counts.shape[1:] == (N_PIXELS,):
        counts = counts.reshape(len(counts), *RESPONSE_SHAPE)
    if counts.ndim != 3 or counts.shape[1:] != RESPONSE_SHAPE:
        raise _fail(path, f"responses have shape {counts.shape}, expected (N, 44, 44)")
    if len(counts) != n:
        raise _fail(path, f"{len(counts)} responses for {n} particles")
    if np.issubdtype(counts.dtype, np.floating):
        if not np.isfinite(counts).all():
            raise _fail(path, "responses hold NaN or infinite values")
        if integer and (counts != np.rint(counts)).any():
            raise _fail(path, "responses hold non-integer photon counts")
    if counts.dtype.kind != "u" and counts.size and counts.min() < 0:
        raise _fail(path, "responses hold negative photon counts")
    return counts


def _data_chunk(path: Path, start: int, particles: Any, pdg: Any, responses: Any,
                integer_counts: bool) -> DataChunk:
    array = as_particle_array(particles, source=str(path))
    n = len(array)
    return DataChunk(
        start=start,
        particles=array,
        pdg=None if pdg is None else _checked_pdg(path, pdg, n),
        responses=None if responses is None else _checked_counts(
            path, responses, n, integer=integer_counts).astype(np.float32),
    )


def _plain(value: Any) -> Any:
    """An attribute value as plain Python (numpy scalars, bytes and arrays unwrapped)."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    return value


# -------------------------------------------------------------------------- sources


class DataSource(ABC):
    """An open data file: its size, attributes and rows, read in chunks.

    Use as a context manager (``with open_data_file(path) as source``) so the file is
    closed again.
    """

    format: str = ""
    integer_counts = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.has_responses = False
        self.attrs: dict[str, Any] = {}
        self._handle: Any = None  # an open h5py or uproot file, closed by close()

    @property
    @abstractmethod
    def n(self) -> int:
        """Number of particles (rows) in the file."""

    @abstractmethod
    def _raw_chunks(self, chunk_size: int, with_responses: bool) -> Iterator[tuple[Any, Any, Any]]:
        """(particles (n, 9), pdg or None, responses or None) as stored, chunk by chunk."""

    def close(self) -> None:
        """Release the file."""
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> DataSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.n

    def chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE, *,
               with_responses: bool = True) -> Iterator[DataChunk]:
        """Checked chunks of at most ``chunk_size`` rows; responses only if asked and held."""
        if chunk_size < 1:
            raise CalosimError(f"chunk_size must be positive, got {chunk_size}")
        with_responses = with_responses and self.has_responses
        start = 0
        with _translate_errors(self.path):
            for particles, pdg, responses in self._raw_chunks(chunk_size, with_responses):
                chunk = _data_chunk(self.path, start, particles, pdg, responses,
                                    self.integer_counts)
                start += len(chunk)
                yield chunk
        if start != self.n:
            raise _fail(self.path, f"file ended after {start} of {self.n} rows")


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

    @abstractmethod
    def _rows(self, start: int, stop: int, with_responses: bool) -> tuple[Any, Any, Any]:
        """Rows [start, stop) as stored: particles, pdg or None, responses or None."""

    def _raw_chunks(self, chunk_size: int, with_responses: bool) -> Iterator[tuple[Any, Any, Any]]:
        for start in range(0, self.n, chunk_size):
            yield self._rows(start, min(self.n, start + chunk_size), with_responses)

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


def _uproot() -> ModuleType:
    import uproot  # imported on first use: it is slow to import and only ROOT needs it

    return uproot


class _RootSource(DataSource):
    format = "root"
    integer_counts = True

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._file = self._handle = _uproot().open(path)
        try:
            self._tree = self._file[self._tree_name()]
            branches = set(self._tree.keys())
            missing = [c for c in PARTICLE_COLUMNS if c not in branches]
            if missing:
                raise _fail(path, f"tree {self._tree.name!r} lacks branch(es) {', '.join(missing)}")
            self.has_responses = "responses" in branches
            self._has_pdg = "pdg" in branches
            if ROOT_ATTRS_KEY in self._file:
                self.attrs = json.loads(str(self._file[ROOT_ATTRS_KEY]))
        except BaseException:
            self._file.close()
            raise

    def _tree_name(self) -> str:
        # RNTuple, ROOT's successor of TTree, reads through the same uproot calls.
        trees = sorted({key.split(";")[0] for key, kind in self._file.classnames().items()
                        if kind in ("TTree", "ROOT::RNTuple")})
        if ROOT_TREE in trees:
            return ROOT_TREE
        if len(trees) == 1:
            return trees[0]
        raise _fail(self.path, f"no tree {ROOT_TREE!r} (trees: {', '.join(trees) or 'none'})")

    @property
    def n(self) -> int:
        return int(self._tree.num_entries)

    def _raw_chunks(self, chunk_size: int, with_responses: bool) -> Iterator[tuple[Any, Any, Any]]:
        branches = list(PARTICLE_COLUMNS) + ["pdg"] * self._has_pdg + ["responses"] * with_responses
        for arrays in self._tree.iterate(branches, step_size=chunk_size, library="np"):
            responses = arrays.get("responses")
            if responses is not None and responses.dtype == object:
                raise _fail(self.path, "responses branch is not a fixed-size array of 1936 values")
            yield arrays, arrays.get("pdg"), responses


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
                yield particles, pdg, (responses.read(rows) if responses else None)


class _CsvSource(DataSource):
    """A particle list: a header naming the columns, then one particle per line."""

    format = "csv"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with open(path, encoding="utf-8") as handle:
            header = next(self._data_lines(handle), None)
        if header is None:
            raise _fail(path, "empty CSV file (expected a header naming the particle columns)")
        names = [name.strip() for name in header.split(",")]
        self._n_columns = len(names)
        self._layout = _table_layout(path, (0, len(names)), names)
        self._n: int | None = None

    @staticmethod
    def _data_lines(handle: IO[str]) -> Iterator[str]:
        return (line for line in handle if line.strip() and not line.lstrip().startswith("#"))

    @property
    def n(self) -> int:
        if self._n is None:
            with _translate_errors(self.path), open(self.path, encoding="utf-8") as handle:
                self._n = sum(1 for _ in self._data_lines(handle)) - 1
        return self._n

    def _raw_chunks(self, chunk_size: int, with_responses: bool) -> Iterator[tuple[Any, Any, Any]]:
        with open(self.path, encoding="utf-8") as handle:
            lines = self._data_lines(handle)
            next(lines)
            first_row = 1
            while block := list(islice(lines, chunk_size)):
                try:
                    table = np.loadtxt(block, delimiter=",", ndmin=2, dtype=np.float64)
                except ValueError as exc:
                    rows = f"{first_row}-{first_row + len(block) - 1}"
                    problem = f"bad value in data rows {rows}: {_one_line(exc)}"
                    raise _fail(self.path, problem) from exc
                if table.shape[1] != self._n_columns:
                    raise _fail(self.path, f"rows have {table.shape[1]} values but the header "
                                           f"names {self._n_columns} columns")
                first_row += len(block)
                yield (*self._layout.split(table), None)


def open_data_file(path: str | os.PathLike[str], format: str | None = None) -> DataSource:
    """Open a data file of any supported format (see FORMATS) for chunked reading."""
    path = Path(path)
    name = detect_format(path, format)
    if name != "npz" and not path.is_file():
        raise _fail(path, "no such file")
    with _translate_errors(path):
        if name in ("h5", "calochallenge"):
            file = h5py.File(path, "r")
            try:
                return (_CanonicalH5Source if name == "h5" else _CaloChallengeSource)(path, file)
            except BaseException:
                file.close()
                raise
        if name == "root":
            return _RootSource(path)
        if name == "npz":
            return _NpzSource(path)
        return _CsvSource(path)


def count_particles(path: str | os.PathLike[str], format: str | None = None) -> int:
    """Number of particles in a data file, without reading the rows (CSV: one pass)."""
    with open_data_file(path, format) as source:
        return source.n


def iter_data_chunks(path: str | os.PathLike[str], chunk_size: int = DEFAULT_CHUNK_SIZE,
                     format: str | None = None, *,
                     with_responses: bool = True) -> Iterator[DataChunk]:
    """Particles, PDG ids and (if held) responses of a file, ``chunk_size`` rows at a time."""
    with open_data_file(path, format) as source:
        yield from source.chunks(chunk_size, with_responses=with_responses)


def iter_particle_chunks(path: str | os.PathLike[str], chunk_size: int = DEFAULT_CHUNK_SIZE,
                         format: str | None = None) -> Iterator[ParticleChunk]:
    """The particles of a file (responses are not read), ``chunk_size`` rows at a time."""
    for chunk in iter_data_chunks(path, chunk_size, format, with_responses=False):
        yield ParticleChunk(chunk.start, chunk.particles, chunk.pdg)


# ------------------------------------------------------------------ atomic output


class _TempFiles:
    """Temporary files beside their targets, renamed into place together on commit."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Path, Path]] = []

    def reserve(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        # 0o666 under the umask: the renamed file gets the permissions of a plain open().
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        self._pairs.append((temp, target))
        return temp

    def commit(self) -> None:
        try:
            for temp, target in self._pairs:
                os.replace(temp, target)
        finally:
            self.discard()

    def discard(self) -> None:
        for temp, _ in self._pairs:
            temp.unlink(missing_ok=True)
        self._pairs.clear()


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On an exception the temporary file is removed and an existing ``path`` is untouched.
    """
    target = Path(path)
    temps = _TempFiles()
    with _translate_errors(target, "write"):
        temp = temps.reserve(target)
    try:
        yield temp
        with _translate_errors(target, "write"):
            temps.commit()
    finally:
        temps.discard()


# -------------------------------------------------------------------------- writers


@dataclass(frozen=True)
class _Rows:
    """One validated append: particles, counts as uint32, and the optional arrays."""

    particles: np.ndarray
    responses: np.ndarray | None
    pdg: np.ndarray | None
    channels: np.ndarray | None

    def layout(self) -> tuple[bool, bool, bool]:
        return self.responses is not None, self.pdg is not None, self.channels is not None


def _counts_for_writing(path: Path, responses: Any, n: int) -> np.ndarray:
    """Counts as uint32; non-integer values (model output) are rounded as ALICE O2 does."""
    counts = _checked_counts(path, responses, n, integer=False)
    if np.issubdtype(counts.dtype, np.floating):
        counts = np.rint(counts)
    if counts.size and counts.max() > _MAX_COUNT:
        raise _fail(path, "responses hold counts beyond the uint32 range")
    return counts.astype(np.uint32)


def _rows_for_writing(path: Path, particles: Any, responses: Any, pdg: Any,
                      channels: Any) -> _Rows:
    array = as_particle_array(particles, source=str(path))
    n = len(array)
    if channels is not None:
        channels = np.asarray(channels, dtype=np.float32)
        if channels.shape != (n, N_CHANNELS) or not np.isfinite(channels).all():
            raise _fail(path, f"channels must be finite, of shape ({n}, {N_CHANNELS})")
    return _Rows(
        particles=array,
        responses=None if responses is None else _counts_for_writing(path, responses, n),
        pdg=None if pdg is None else _checked_pdg(path, pdg, n),
        channels=channels,
    )


def _json_default(value: Any) -> Any:
    plain = _plain(value)
    return plain if plain is not value else str(value)


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
    return json.dumps(value, default=_json_default)


class _Sink(ABC):
    """Writes validated rows into temporary files reserved from ``temps``."""

    def __init__(self, path: Path, attrs: Mapping[str, Any], temps: _TempFiles) -> None:
        self.path = path
        self.attrs = dict(attrs)
        self.temps = temps

    @abstractmethod
    def append(self, rows: _Rows) -> None:
        """Write one chunk of rows."""

    @abstractmethod
    def finish(self) -> None:
        """Complete and close the temporary files (an empty file if nothing was appended)."""

    @abstractmethod
    def abort(self) -> None:
        """Close open handles after a failure; the temporary files are discarded later."""


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
        particles = _resizable(self.file, "particles", np.float32, (N_ATTRIBUTES,), 4096)
        particles.attrs["columns"] = list(PARTICLE_COLUMNS)
        particles.attrs["units"] = [PARTICLE_UNITS[c] for c in PARTICLE_COLUMNS]
        if has_responses:
            self._create_responses()
        if has_pdg:
            _resizable(self.file, "pdg", np.int32, (), 4096)
        if has_channels:
            _resizable(self.file, "channels", np.float32, (N_CHANNELS,), 4096)
        self._created = True

    def _create_responses(self) -> None:
        _resizable(self.file, "responses", np.uint16, RESPONSE_SHAPE, 64).attrs["unit"] = "photons"

    def _append_responses(self, counts: np.ndarray) -> None:
        dataset = self.file["responses"]
        if dataset.dtype == np.uint16 and counts.size and counts.max() > _UINT16_MAX:
            dataset = self._widen(dataset)
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

    def finish(self) -> None:
        if not self._created:
            self._create(*self.empty_layout)
        self.file.close()

    def abort(self) -> None:
        self.file.close()


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

    def _append_responses(self, counts: np.ndarray) -> None:
        _extend(self.file["showers"], counts.reshape(len(counts), N_PIXELS).astype(np.float32))


class _RootSink(_Sink):
    """One TTree, created at the first append; attributes as JSON in a TObjString."""

    def __init__(self, path: Path, attrs: Mapping[str, Any], temps: _TempFiles) -> None:
        super().__init__(path, attrs, temps)
        self.file = _uproot().recreate(temps.reserve(path))
        self._tree: Any = None

    @staticmethod
    def _branch_types(has_responses: bool, has_pdg: bool, has_channels: bool) -> dict[str, Any]:
        types: dict[str, Any] = {c: np.float32 for c in PARTICLE_COLUMNS}
        if has_pdg:
            types["pdg"] = np.int32
        if has_responses:
            types["responses"] = np.dtype((np.int32, (N_PIXELS,)))
        if has_channels:
            types["channels"] = np.dtype((np.float32, (N_CHANNELS,)))
        return types

    def append(self, rows: _Rows) -> None:
        if self._tree is None:
            self._tree = self.file.mktree(ROOT_TREE, self._branch_types(*rows.layout()),
                                          title="calosim ZDC particles and responses")
        branches: dict[str, np.ndarray] = {c: rows.particles[:, i]
                                           for i, c in enumerate(PARTICLE_COLUMNS)}
        if rows.pdg is not None:
            branches["pdg"] = rows.pdg
        if rows.responses is not None:
            if rows.responses.max(initial=0) > np.iinfo(np.int32).max:
                raise _fail(self.path, "responses hold counts beyond the int32 range of ROOT")
            branches["responses"] = rows.responses.reshape(-1, N_PIXELS).astype(np.int32)
        if rows.channels is not None:
            branches["channels"] = rows.channels
        self._tree.extend(branches)

    def finish(self) -> None:
        if self._tree is None:
            self.file.mktree(ROOT_TREE, self._branch_types(True, False, False))
        self.file[ROOT_ATTRS_KEY] = json.dumps(self.attrs, default=_json_default)
        self.file.close()

    def abort(self) -> None:
        self.file.close()


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


_SINKS: dict[str, type[_Sink]] = {
    "h5": _HDF5Sink, "calochallenge": _CaloChallengeSink, "root": _RootSink, "npz": _NpzSink,
}


def provenance_attrs(attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``attrs`` plus the calosim version and (unless given) the creating command line."""
    merged = dict(attrs or {})
    merged.setdefault(ATTR_CREATOR, shlex.join(sys.argv))
    merged[ATTR_VERSION] = __version__
    return merged


class ResponseWriter:
    """Write particles and responses chunk by chunk into a new data file, atomically.

    ``with ResponseWriter(path, attrs) as writer: writer.append(particles, responses)``.
    Rows go to a temporary file beside ``path`` that replaces ``path`` only when the block
    ends without an exception; otherwise the temporary file is removed and an existing
    ``path`` is left untouched. ``attrs`` become file attributes, with the calosim version
    and creating command added (pass ``seed`` and ``simulator`` too). Counts are stored as
    integers: non-integer values are rounded, negative ones rejected. Every append must
    give the same optional arrays (responses, pdg, channels) as the first; responses=None
    writes a particle list. npz keeps no attributes or channels.
    """

    def __init__(self, path: str | os.PathLike[str], attrs: Mapping[str, Any] | None = None,
                 format: str | None = None) -> None:
        self.path = Path(path)
        self.format = output_format(self.path, format)
        self.attrs = provenance_attrs(attrs)
        self.n_written = 0
        self._sink: _Sink | None = None
        self._temps = _TempFiles()
        self._layout: tuple[bool, bool, bool] | None = None

    def __enter__(self) -> ResponseWriter:
        try:
            with _translate_errors(self.path, "write"):
                self._sink = _SINKS[self.format](self.path, self.attrs, self._temps)
        except BaseException:
            self._temps.discard()
            raise
        return self

    def append(self, particles: Any, responses: Any, pdg: Any = None,
               channels: Any = None) -> None:
        """Add rows: particles (n, 9), responses (n, 44, 44) counts or None, pdg (n,),
        channels (n, 5)."""
        if self._sink is None:
            raise CalosimError(f"{self.path}: ResponseWriter.append used outside its with-block")
        rows = _rows_for_writing(self.path, particles, responses, pdg, channels)
        if len(rows.particles) == 0:
            return
        if self._layout is None:
            self._layout = rows.layout()
        elif rows.layout() != self._layout:
            raise _fail(self.path, "every append must give the same arrays (responses, pdg, "
                                   "channels) as the first")
        with _translate_errors(self.path, "write"):
            self._sink.append(rows)
        self.n_written += len(rows.particles)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        if exc_type is not None:
            self._discard(sink)
            return
        try:
            with _translate_errors(self.path, "write"):
                sink.finish()
                self._temps.commit()
        except BaseException:
            self._discard(sink)
            raise

    def _discard(self, sink: _Sink) -> None:
        # A failing clean-up must not hide the error being handled.
        with suppress(Exception):
            sink.abort()
        self._temps.discard()
