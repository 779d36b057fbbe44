"""ResponseWriter: particles and responses into a new data file, chunk by chunk, atomically."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from calosim._version import __version__
from calosim.data.formats.atomic import _TempFiles
from calosim.data.formats.base import _fail, _translate_errors
from calosim.data.formats.calochallenge import _CaloChallengeSink
from calosim.data.formats.detect import output_format
from calosim.data.formats.hdf5 import _HDF5Sink
from calosim.data.formats.npz import _NpzSink
from calosim.data.formats.root import _RootSink
from calosim.data.formats.sink import _rows_for_writing, _Sink
from calosim.errors import CalosimError

# File attribute names every calosim writer sets (version, creator) or records (seed, simulator).
ATTR_VERSION = "calosim_version"
ATTR_CREATOR = "creator"
ATTR_SEED = "seed"
ATTR_SIMULATOR = "simulator"

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

    def copy_rows(self, source: str | os.PathLike[str]) -> int | None:
        """Append every row of ``source`` by copying its stored (compressed) data, when
        the formats allow: a canonical HDF5 shard of the same run into an HDF5 file (see
        calosim.data.formats.h5chunks). Returns the number of rows, or None with nothing
        written: then append the rows with ``append``."""
        if self._sink is None:
            raise CalosimError(f"{self.path}: ResponseWriter.copy_rows used outside its with-block")
        with _translate_errors(self.path, "write"):
            copied = self._sink.copy_rows(Path(source), self._layout)
        if copied is None:
            return None
        rows, self._layout = copied
        self.n_written += rows
        return rows

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
