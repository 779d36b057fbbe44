"""ResponseWriter.copy_rows: HDF5 shards appended by copying their compressed chunks, and
the fast integer conversion of counts on writing."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from data_helpers import assert_same_rows, random_dataset

from calosim.data import ResponseWriter, ZDCDataset, read_dataset, write_dataset


def write_part(path: Path, part: ZDCDataset, channels: bool = True) -> Path:
    with ResponseWriter(path, {"seed": 1}) as writer:
        sums = part.responses.reshape(len(part), -1)[:, :5] if channels else None
        writer.append(part.particles, part.responses, part.pdg, channels=sums)
    return path


def concatenated(*parts: ZDCDataset) -> ZDCDataset:
    return ZDCDataset(np.concatenate([p.responses for p in parts]),
                      np.concatenate([p.particles for p in parts]),
                      np.concatenate([p.pdg for p in parts]))


def test_shards_of_whole_chunks_are_copied_and_read_back_alike(tmp_path: Path) -> None:
    # Shards of a run hold whole random blocks (1024 rows) but the last, which may be short.
    first, last = random_dataset(2048, seed=1), random_dataset(300, seed=2)
    shards = [write_part(tmp_path / "a.h5", first), write_part(tmp_path / "b.h5", last)]
    with ResponseWriter(tmp_path / "merged.h5", {"seed": 1}) as writer:
        assert [writer.copy_rows(shard) for shard in shards] == [2048, 300]
        assert writer.n_written == 2348
    merged = read_dataset(tmp_path / "merged.h5")
    assert_same_rows(merged, concatenated(first, last))
    with h5py.File(tmp_path / "merged.h5") as file, h5py.File(shards[1]) as shard:
        assert file["responses"].dtype == np.uint16 and file["responses"].fletcher32
        np.testing.assert_array_equal(file["channels"][2048:], shard["channels"][:])
        assert list(file["particles"].attrs["columns"]) == list(shard["particles"].attrs["columns"])


def test_a_target_off_a_chunk_boundary_declines_and_writes_nothing(tmp_path: Path) -> None:
    head, shard = random_dataset(100, seed=3), random_dataset(1024, seed=4)
    source = write_part(tmp_path / "shard.h5", shard)
    with ResponseWriter(tmp_path / "out.h5") as writer:
        writer.append(head.particles, head.responses, head.pdg,
                      channels=head.responses.reshape(100, -1)[:, :5])
        assert writer.copy_rows(source) is None
        assert writer.n_written == 100
        writer.append(shard.particles, shard.responses, shard.pdg,
                      channels=shard.responses.reshape(1024, -1)[:, :5])
    assert_same_rows(read_dataset(tmp_path / "out.h5"), concatenated(head, shard))


@pytest.mark.parametrize("case", ["other layout", "not hdf5", "calochallenge", "wide counts"])
def test_incompatible_sources_decline(tmp_path: Path, case: str) -> None:
    shard = random_dataset(1024, seed=5)
    if case == "wide counts":
        shard.responses[0, 0, 0] = 70000  # stored as uint32, the target starts as uint16
    source = write_part(tmp_path / "shard.h5", shard, channels=case != "other layout")
    if case == "not hdf5":
        source = tmp_path / "shard.root"
        write_dataset(source, shard)
    fmt = "calochallenge" if case == "calochallenge" else None
    with ResponseWriter(tmp_path / "out.h5", format=fmt) as writer:
        if case == "other layout":
            writer.append(shard.particles, shard.responses, shard.pdg,
                          channels=np.zeros((1024, 5)))
        assert writer.copy_rows(source) is None
        writer.append(shard.particles, shard.responses, shard.pdg, channels=np.zeros((1024, 5)))
    assert len(read_dataset(tmp_path / "out.h5")) == (2048 if case == "other layout" else 1024)


def test_counts_are_rounded_half_to_even_and_kept_exact_beyond_int32(tmp_path: Path) -> None:
    rows = random_dataset(3, seed=6)
    responses = np.zeros((3, 44, 44))
    responses[0, 0, :4] = [0.5, 1.5, 2.5, 3.49]
    responses[1, 0, 0] = 2.0**31 + 5  # beyond int32: the uint32 conversion
    responses[2, 0, 0] = 65535.6
    with ResponseWriter(tmp_path / "out.h5") as writer:
        writer.append(rows.particles, responses)
    with h5py.File(tmp_path / "out.h5") as file:
        stored = file["responses"][:]
    assert stored.dtype == np.uint32
    assert stored[0, 0, :4].tolist() == [0, 2, 2, 3]
    assert stored[1, 0, 0] == 2**31 + 5 and stored[2, 0, 0] == 65536
    assert stored.sum() == 0 + 2 + 2 + 3 + 2**31 + 5 + 65536
