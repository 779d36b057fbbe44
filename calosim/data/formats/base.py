"""Shared by every format: the DataSource interface, chunks, errors and row checks."""

from __future__ import annotations

import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calosim.data.schema import (
    N_ATTRIBUTES,
    N_PIXELS,
    PARTICLE_COLUMNS,
    RESPONSE_SHAPE,
    as_particle_array,
)
from calosim.errors import CalosimError, DataFormatError

DEFAULT_CHUNK_SIZE = 8192


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


def _from_io_library(exc: BaseException) -> bool:
    """Whether ``exc`` is of, or was raised inside, the file libraries: a damaged file
    makes them raise exceptions of any type (zipfile, for one, refuses an unknown
    compression method as unimplemented)."""
    libraries = ("h5py", "uproot", "awkward", "zipfile")
    if type(exc).__module__.split(".")[0] in libraries:
        return True
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
    return str(module).split(".")[0] in libraries


@contextmanager
def _translate_errors(path: Path, action: str = "read") -> Iterator[None]:
    """Turn library errors (h5py, uproot, zipfile, numpy) into one-line DataFormatErrors."""
    try:
        yield
    except CalosimError:
        raise
    except Exception as exc:
        if isinstance(exc, _IO_ERRORS) or _from_io_library(exc):
            raise DataFormatError(f"{path}: cannot {action} file ({_one_line(exc)})") from exc
        raise


def _fail(path: Path, problem: str) -> DataFormatError:
    return DataFormatError(f"{path}: {problem}")


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
    if n and np.abs(pdg.astype(np.float64)).max() > np.iinfo(np.int32).max:
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


# --------------------------------------------------------------------------- source


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
