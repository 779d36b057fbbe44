"""Bad files raise a one-line DataFormatError naming the file, never a library traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
from data_helpers import expect_data_error

from calosim.data import (
    PARTICLE_COLUMNS,
    ResponseWriter,
    ZDCDataset,
    count_particles,
    describe_file,
    iter_particle_chunks,
    read_dataset,
    read_particles,
    write_dataset,
)

READERS: list[Callable[[Path], object]] = [
    read_dataset, read_particles, count_particles, describe_file,
    lambda path: list(iter_particle_chunks(path, 4)),
]


def _canonical(path: Path, *, responses: np.ndarray | None = None,
               particles: np.ndarray | None = None) -> Path:
    """A hand-made canonical file, 4 rows unless the arrays given say otherwise."""
    with h5py.File(path, "w") as file:
        file["particles"] = np.ones((4, 9), np.float32) if particles is None else particles
        file["responses"] = np.zeros((4, 44, 44), np.uint16) if responses is None else responses
    return path


@pytest.mark.parametrize("name", ["missing.h5", "missing.root", "missing.npz", "missing.csv",
                                  "missing_responses.npz"])
@pytest.mark.parametrize("reader", READERS)
def test_missing_file(tmp_path: Path, name: str, reader: Callable[[Path], object]) -> None:
    expect_data_error(tmp_path / name, lambda: reader(tmp_path / name), mentions="no such file")


@pytest.mark.parametrize("name", ["out.h5", "out.root", "out_responses.npz",
                                  "out_particles.npz"])
@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_truncated_file(tmp_path: Path, dataset: ZDCDataset, name: str, keep: float) -> None:
    write_dataset(tmp_path / ("out.npz" if name.endswith("npz") else name), dataset)
    path = tmp_path / name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    expect_data_error(path, lambda: read_dataset(path))


def test_corrupted_hdf5_data_fails_its_checksum(tmp_path: Path, dataset: ZDCDataset) -> None:
    path = tmp_path / "out.h5"
    write_dataset(path, dataset)
    with h5py.File(path, "r") as file:
        chunk = file["responses"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    middle = chunk.byte_offset + chunk.size // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))
    expect_data_error(path, lambda: read_dataset(path))


@pytest.mark.parametrize("name", ["junk.h5", "junk.root", "junk.npz", "junk.dat"])
def test_not_a_data_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a calorimeter file\n" * 10)
    expect_data_error(path, lambda: read_dataset(path))


def test_hdf5_without_particles(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["images"] = np.zeros((3, 44, 44))
    expect_data_error(tmp_path / "other.h5", lambda: read_dataset(tmp_path / "other.h5"),
                      mentions="particles")


@pytest.mark.parametrize(("responses", "particles", "mentions"), [
    (np.zeros((4, 40, 40), np.uint16), None, "shape"),
    (None, np.ones((4, 8), np.float32), "shape"),
    (np.zeros((5, 44, 44), np.uint16), None, "rows"),
    (np.full((4, 44, 44), -1, np.int16), None, "negative"),
    (np.full((4, 44, 44), 0.5, np.float32), None, "non-integer"),
    (np.full((4, 44, 44), np.inf, np.float32), None, "infinite"),
    (None, np.full((4, 9), np.nan, np.float32), "NaN"),
])
def test_bad_canonical_contents(tmp_path: Path, responses: np.ndarray | None,
                                particles: np.ndarray | None, mentions: str) -> None:
    path = _canonical(tmp_path / "bad.h5", responses=responses, particles=particles)
    expect_data_error(path, lambda: read_dataset(path), mentions=mentions)


def test_bad_pdg_dataset(tmp_path: Path) -> None:
    path = _canonical(tmp_path / "bad.h5")
    with h5py.File(path, "a") as file:
        file["pdg"] = np.array([22.0, 2112.5, 22.0, 22.0])
    expect_data_error(path, lambda: read_dataset(path), mentions="pdg")


def test_particle_columns_attribute_missing_a_column(tmp_path: Path) -> None:
    path = _canonical(tmp_path / "bad.h5")
    with h5py.File(path, "a") as file:
        file["particles"].attrs["columns"] = [*PARTICLE_COLUMNS[:-1], "Q"]
    expect_data_error(path, lambda: read_dataset(path), mentions="charge")


def test_npz_pair_of_different_lengths(tmp_path: Path) -> None:
    np.savez(tmp_path / "x_responses.npz", np.zeros((5, 44, 44)))
    np.savez(tmp_path / "x_particles.npz", np.ones((4, 9)))
    expect_data_error(tmp_path / "x_responses.npz",
                      lambda: read_dataset(tmp_path / "x_responses.npz"), mentions="5 responses")


def test_npz_with_wrong_column_count(tmp_path: Path) -> None:
    np.savez(tmp_path / "x_particles.npz", np.ones((4, 7)))
    expect_data_error(tmp_path / "x_particles.npz",
                      lambda: read_particles(tmp_path / "x_particles.npz"), mentions="(N, 9)")


def test_npz_responses_without_partner(tmp_path: Path) -> None:
    np.savez(tmp_path / "x_responses.npz", np.zeros((4, 44, 44)))
    expect_data_error(tmp_path / "x_responses.npz",
                      lambda: read_dataset(tmp_path / "x_responses.npz"),
                      mentions="x_particles.npz")


def test_npz_holding_pickled_objects(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", np.array([{"Energy": 1}], dtype=object))
    expect_data_error(tmp_path / "x.npz", lambda: read_particles(tmp_path / "x.npz"),
                      mentions="objects")


@pytest.mark.parametrize(("text", "mentions"), [
    ("Energy,Vx,Vy,Vz,Px,Py,Pz,mass\n1,0,0,0,0,0,1,0\n", "charge"),
    (",".join(PARTICLE_COLUMNS) + "\n1,0,0,0,0,0,1,0,abc\n", "line 2, column 9 (charge)"),
    (",".join(PARTICLE_COLUMNS) + "\n1,0,0,0,0,0,1,0,0\n1,0,0,0,0,0,1,0\n", "columns"),
    (",".join(PARTICLE_COLUMNS) + "\n1,0,0,0,0,0,inf,0,0\n", "infinite"),
    ("", "empty"),
])
def test_bad_csv(tmp_path: Path, text: str, mentions: str) -> None:
    path = tmp_path / "gun.csv"
    path.write_text(text)
    expect_data_error(path, lambda: read_particles(path), mentions=mentions)


def test_calochallenge_file_with_another_voxel_count(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "cc.h5", "w") as file:
        file["incident_energies"] = np.ones((3, 1))
        file["showers"] = np.zeros((3, 368))
    expect_data_error(tmp_path / "cc.h5", lambda: read_dataset(tmp_path / "cc.h5"),
                      mentions="showers")


def test_root_file_missing_a_branch(tmp_path: Path) -> None:
    with uproot.recreate(tmp_path / "bad.root") as file:
        tree = file.mktree("zdc", {c: np.float32 for c in PARTICLE_COLUMNS[:-1]})
        tree.extend({c: np.ones(3, np.float32) for c in PARTICLE_COLUMNS[:-1]})
    expect_data_error(tmp_path / "bad.root", lambda: read_dataset(tmp_path / "bad.root"),
                      mentions="charge")


def test_root_file_without_a_tree(tmp_path: Path) -> None:
    with uproot.recreate(tmp_path / "bad.root") as file:
        file["note"] = "no tree here"
    expect_data_error(tmp_path / "bad.root", lambda: read_dataset(tmp_path / "bad.root"),
                      mentions="no tree")


@pytest.mark.parametrize(("array", "where", "value", "mentions"), [
    ("particles", (1, 2), np.inf, "infinite"),
    ("responses", (0, 1, 1), -3, "negative"),
])
def test_writer_rejects_bad_rows_naming_the_output(tmp_path: Path, dataset: ZDCDataset,
                                                   array: str, where: tuple[int, ...],
                                                   value: float, mentions: str) -> None:
    rows = {"particles": dataset.particles.copy(), "responses": dataset.responses.copy()}
    rows[array][where] = value
    path = tmp_path / "out.h5"

    def write() -> None:
        with ResponseWriter(path) as writer:
            writer.append(rows["particles"], rows["responses"])

    expect_data_error(path, write, mentions=mentions)
    assert not path.exists()
