"""Append one HDF5 file's rows to another by copying compressed chunks as they are.

Merging the shards of a run re-read, validated, re-rounded and re-compressed every
response, which took as long as generating them. Shards of one run are written with the
same dataset layout (dtype, chunk shape, filters), and every shard but the last holds a
whole number of chunks, so their chunks can be moved byte for byte: no decompression,
no compression, and each chunk keeps its Fletcher-32 checksum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np


def _storage(dataset: h5py.Dataset) -> tuple[Any, ...]:
    """What must match for a chunk of one dataset to be a valid chunk of another."""
    return (dataset.dtype, dataset.shape[1:], dataset.chunks, dataset.compression,
            dataset.compression_opts, dataset.shuffle, dataset.fletcher32,
            dataset.scaleoffset)


def _column_names(dataset: h5py.Dataset) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v)
            for v in np.atleast_1d(dataset.attrs.get("columns", []))]


def chunk_copy_possible(source: h5py.File, target: h5py.File, names: Sequence[str]) -> bool:
    """Whether datasets ``names`` of ``source`` can be appended to those of ``target`` by
    chunk copy: same layouts, every chunk of the source stored, the target ending on a
    chunk boundary, and the same particle columns."""
    rows = None
    for name in names:
        have, into = source.get(name), target.get(name)
        if not isinstance(have, h5py.Dataset) or not isinstance(into, h5py.Dataset):
            return False
        if have.chunks is None or _storage(have) != _storage(into):
            return False
        if into.shape[0] % into.chunks[0] or (rows is not None and have.shape[0] != rows):
            return False
        rows = have.shape[0]
        if have.id.get_num_chunks() != -(-rows // have.chunks[0]):
            return False
    if "particles" in names and _column_names(source["particles"]) != _column_names(
            target["particles"]):
        return False
    return set(source) == set(names)


def copy_chunks(source: h5py.Dataset, target: h5py.Dataset) -> None:
    """Append ``source``'s rows to ``target`` (checked by ``chunk_copy_possible``)."""
    start, rows, step = target.shape[0], source.shape[0], source.chunks[0]
    target.resize(start + rows, axis=0)
    tail = (0,) * (source.ndim - 1)
    for first in range(0, rows, step):
        # A partial last chunk is stored whole; the rows past the end are never read.
        mask, chunk = source.id.read_direct_chunk((first, *tail))
        target.id.write_direct_chunk((start + first, *tail), chunk, mask)
