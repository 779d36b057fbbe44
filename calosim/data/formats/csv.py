"""CSV particle lists (``csv``, read only): a header naming the 9 columns (and optionally
``pdg``), then one particle per line; blank lines and ``#`` comments are skipped. A UTF-8
byte order mark (as spreadsheet programs write) is ignored. Errors name the line of the
file, counted from 1 as editors do (header, comments and blank lines included)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np

from calosim.data.formats.base import (
    DataSource,
    _fail,
    _one_line,
    _table_layout,
    _translate_errors,
)
from calosim.data.schema import PARTICLE_COLUMNS

_ENCODING = "utf-8-sig"
# numpy's parse errors end in the position within what it was given: one line here
_NUMPY_POSITION = re.compile(r"\s*at row \d+, column (\d+)\.?$")


def _data_lines(handle: IO[str]) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of the lines that are neither blank nor comments."""
    return ((number, line) for number, line in enumerate(handle, 1)
            if line.strip() and not line.lstrip().startswith("#"))


class _CsvSource(DataSource):
    """A particle list: a header naming the columns, then one particle per line."""

    format = "csv"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with open(path, encoding=_ENCODING) as handle:
            number, header = next(_data_lines(handle), (0, None))
        if header is None:
            raise _fail(path, "empty CSV file (expected a header naming the particle columns)")
        # spreadsheet programs may quote the names
        self._names = [name.strip().strip('"').strip() for name in header.split(",")]
        missing = [c for c in PARTICLE_COLUMNS if c not in self._names]
        if missing:
            hint = "; columns must be separated by commas" if len(self._names) == 1 else ""
            raise _fail(path, f"line {number}: the header lacks particle column(s) "
                              f"{', '.join(missing)}{hint}")
        self._layout = _table_layout(path, (0, len(self._names)), self._names)
        self._n: int | None = None

    @property
    def n(self) -> int:
        if self._n is None:
            with _translate_errors(self.path), open(self.path, encoding=_ENCODING) as handle:
                self._n = sum(1 for _ in _data_lines(handle)) - 1
        return self._n

    def _raw_chunks(self, chunk_size: int, with_responses: bool) -> Iterator[tuple[Any, Any, Any]]:
        with open(self.path, encoding=_ENCODING) as handle:
            lines = _data_lines(handle)
            next(lines)
            while block := list(islice(lines, chunk_size)):
                particles, pdg = self._layout.split(self._table(block))
                # what as_particle_array refuses, refused here naming the line
                with np.errstate(over="ignore", invalid="ignore"):
                    particles = particles.astype(np.float32)
                finite = np.isfinite(particles)
                if not finite.all():
                    row = int((~finite.all(axis=1)).argmax())
                    column = PARTICLE_COLUMNS[int((~finite[row]).argmax())]
                    raise _fail(self.path, f"line {block[row][0]}: {column} is NaN, infinite "
                                           "or beyond the float32 range")
                yield particles, pdg, None

    def _table(self, block: list[tuple[int, str]]) -> np.ndarray:
        """The values of a block of lines, or the error naming its first bad line."""
        try:
            table = np.loadtxt([line for _, line in block], delimiter=",", ndmin=2,
                               dtype=np.float64)
            if table.shape == (len(block), len(self._names)):
                return table
        except ValueError:
            pass
        for number, line in block:  # only when the block is bad: find its first bad line
            try:
                values = np.loadtxt([line], delimiter=",", ndmin=2, dtype=np.float64)
            except ValueError as error:
                message, where = _one_line(error), f"line {number}"
                position = _NUMPY_POSITION.search(message)
                if position:
                    column = int(position.group(1))
                    name = self._names[column - 1] if column <= len(self._names) else "extra"
                    message = message[: position.start()]
                    where = f"{where}, column {column} ({name})"
                raise _fail(self.path, f"{where}: {message}") from None
            if values.shape[1] != len(self._names):
                raise _fail(self.path, f"line {number}: {values.shape[1]} values but the header "
                                       f"names {len(self._names)} columns")
        raise _fail(self.path, f"lines {block[0][0]}-{block[-1][0]}: cannot read the values")
