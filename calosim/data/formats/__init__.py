"""Reading and writing ZDC data files, chunk by chunk so memory stays flat in N.

Formats, by the names ``format=`` takes, each in its own module (reader and writer):

- ``h5`` (hdf5.py): the canonical calosim file: responses, particles, optional pdg and
  channels, provenance in the file attributes.
- ``calochallenge`` (calochallenge.py): CaloChallenge-style HDF5 (incident energies in
  MeV, flat showers), plus calosim's particle table so a round trip is lossless.
- ``root`` (root.py): a TTree ``zdc``, one branch per attribute, via uproot.
- ``npz`` (npz.py): the research ``*_responses.npz`` + ``*_particles.npz`` pair, or one
  particle-list npz.
- ``csv`` (csv.py): particle lists only, read but not written.

Shared pieces: base.py (DataSource, chunks, error translation, row checks), detect.py
(format names and detection), sink.py (validated rows and the writer interface of a
format), atomic.py (temporary files renamed into place), writer.py (ResponseWriter).
This module opens files of any format and re-exports the public names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from calosim.data.formats.atomic import atomic_output
from calosim.data.formats.base import (
    DEFAULT_CHUNK_SIZE,
    DataChunk,
    DataSource,
    ParticleChunk,
    _fail,
    _translate_errors,
)
from calosim.data.formats.calochallenge import CALOCHALLENGE_NOTE_ATTR, _CaloChallengeSource
from calosim.data.formats.csv import _CsvSource
from calosim.data.formats.detect import FORMATS, detect_format, output_format
from calosim.data.formats.hdf5 import _CanonicalH5Source
from calosim.data.formats.npz import NPZ_PAIR_NAMES, _NpzSource, npz_pair_paths
from calosim.data.formats.root import ROOT_ATTRS_KEY, ROOT_TREE, _RootSource
from calosim.data.formats.sink import N_CHANNELS
from calosim.data.formats.writer import (
    ATTR_CREATOR,
    ATTR_SEED,
    ATTR_SIMULATOR,
    ATTR_VERSION,
    ResponseWriter,
    provenance_attrs,
)

__all__ = [
    "ATTR_CREATOR", "ATTR_SEED", "ATTR_SIMULATOR", "ATTR_VERSION", "CALOCHALLENGE_NOTE_ATTR",
    "DEFAULT_CHUNK_SIZE", "FORMATS", "NPZ_PAIR_NAMES", "N_CHANNELS", "ROOT_ATTRS_KEY",
    "ROOT_TREE",
    "DataChunk", "DataSource", "ParticleChunk", "ResponseWriter",
    "atomic_output", "count_particles", "detect_format", "iter_data_chunks",
    "iter_particle_chunks", "npz_pair_paths", "open_data_file", "output_format",
    "provenance_attrs",
]

_OPENERS: dict[str, Callable[[Path], DataSource]] = {
    "h5": _CanonicalH5Source.open, "calochallenge": _CaloChallengeSource.open,
    "root": _RootSource, "npz": _NpzSource, "csv": _CsvSource,
}


def open_data_file(path: str | os.PathLike[str], format: str | None = None) -> DataSource:
    """Open a data file of any supported format (see FORMATS) for chunked reading."""
    path = Path(path)
    name = detect_format(path, format)
    if name != "npz" and not path.is_file():
        raise _fail(path, "no such file")
    with _translate_errors(path):
        return _OPENERS[name](path)


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
