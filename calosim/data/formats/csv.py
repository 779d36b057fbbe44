"""CSV particle lists (``csv``, read only): a header naming the 9 columns (and optionally
``pdg``), then one particle per line; blank lines and ``#`` comments are skipped."""

from __future__ import annotations

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
