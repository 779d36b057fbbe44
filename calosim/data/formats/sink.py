"""Shared by the writers: one validated append of rows, and the interface of a format sink."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calosim.data.formats.atomic import _TempFiles
from calosim.data.formats.base import _checked_counts, _checked_pdg, _fail, _plain
from calosim.data.schema import as_particle_array

N_CHANNELS = 5
_MAX_COUNT = np.iinfo(np.uint32).max
_UINT16_MAX = np.iinfo(np.uint16).max
_INT32_MAX = np.iinfo(np.int32).max
# Which optional arrays the rows of a file have: responses, pdg, channels.
Layout = tuple[bool, bool, bool]


@dataclass(frozen=True)
class _Rows:
    """One validated append: particles, counts as uint32, and the optional arrays."""

    particles: np.ndarray
    responses: np.ndarray | None
    pdg: np.ndarray | None
    channels: np.ndarray | None

    def layout(self) -> Layout:
        return self.responses is not None, self.pdg is not None, self.channels is not None


def _counts_for_writing(path: Path, responses: Any, n: int) -> np.ndarray:
    """Counts as uint32; non-integer values (model output) are rounded as ALICE O2 does."""
    counts = _checked_counts(path, responses, n, integer=False)
    if np.issubdtype(counts.dtype, np.floating):
        counts = np.rint(counts)
    top = counts.max() if counts.size else 0
    if top > _MAX_COUNT:
        raise _fail(path, "responses hold counts beyond the uint32 range")
    if counts.dtype == np.uint32:
        return counts
    if top <= _INT32_MAX:
        # numpy casts floats to int32 about 10x faster than to uint32 (a vectorised
        # loop); the counts are non-negative, so the int32 bits are the uint32 value.
        return counts.astype(np.int32).view(np.uint32)
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


def _as_json(value: Any) -> str:
    """``value`` as JSON: numpy values and bytes as plain Python, anything else as its text."""
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

    def copy_rows(self, source: Path, layout: Layout | None) -> tuple[int, Layout] | None:
        """Append every row of the file ``source`` without decoding it, if this format
        can and ``source`` has ``layout`` (None: any); returns the rows and the layout,
        or None with nothing written."""
        return None

    @abstractmethod
    def finish(self) -> None:
        """Complete and close the temporary files (an empty file if nothing was appended)."""

    @abstractmethod
    def abort(self) -> None:
        """Close open handles after a failure; the temporary files are discarded later."""
