"""ROOT (``root``), read and written through uproot.

A TTree (``zdc``) with one branch per particle attribute, optional ``pdg`` and a
fixed-size 1936-value ``responses`` branch; attributes as JSON in a TObjString.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from calosim.data.formats.atomic import _TempFiles
from calosim.data.formats.base import DataSource, _fail
from calosim.data.formats.sink import N_CHANNELS, _as_json, _Rows, _Sink
from calosim.data.schema import N_PIXELS, PARTICLE_COLUMNS, as_particle_array

ROOT_TREE = "zdc"
ROOT_ATTRS_KEY = "calosim_attrs"


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
        start = 0
        for arrays in self._tree.iterate(branches, step_size=chunk_size, library="np"):
            responses = arrays.get("responses")
            if responses is not None and responses.dtype == object:
                raise _fail(self.path, "responses branch is not a fixed-size array of 1936 values")
            # converted here, where the rows' place in the file is known for errors
            particles = as_particle_array(arrays, source=str(self.path), first_row=start)
            start += len(particles)
            yield particles, arrays.get("pdg"), responses


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
        self.file[ROOT_ATTRS_KEY] = _as_json(self.attrs)
        self.file.close()

    def abort(self) -> None:
        self.file.close()
