"""Every format round-trips exactly; readers find pairs, reorder columns, fill foreign files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
from data_helpers import assert_same_rows, random_dataset

from calosim.data import (
    PARTICLE_COLUMNS,
    ZDCDataset,
    count_particles,
    detect_format,
    iter_data_chunks,
    iter_particle_chunks,
    read_dataset,
    read_particles,
    write_dataset,
)
from calosim.data.formats import CALOCHALLENGE_NOTE_ATTR

# (file name, format= given to the writer, format the reader detects)
FORMATS = [
    ("out.h5", None, "h5"),
    ("out.root", None, "root"),
    ("out.npz", None, "npz"),
    ("out.h5", "calochallenge", "calochallenge"),
]
KEEPS_ATTRS = {"h5", "root", "calochallenge"}


@pytest.mark.parametrize(("name", "write_format", "read_format"), FORMATS)
def test_round_trip_gives_identical_arrays(tmp_path: Path, dataset: ZDCDataset, name: str,
                                           write_format: str | None, read_format: str) -> None:
    path = tmp_path / name
    write_dataset(path, dataset, attrs={"note": "round trip"}, format=write_format)
    assert detect_format(path) == read_format
    back = read_dataset(path)
    assert_same_rows(back, dataset)
    assert back.responses is not None and back.responses.dtype == np.float32
    if read_format in KEEPS_ATTRS:
        assert back.attrs["seed"] == 11
        assert back.attrs["simulator"] == "random"
        assert back.attrs["note"] == "round trip"
        assert back.attrs["calosim_version"]
        assert "creator" in back.attrs


@pytest.mark.parametrize("name", ["out.h5", "out.root", "out.npz"])
def test_round_trip_without_pdg(tmp_path: Path, name: str) -> None:
    dataset = random_dataset(with_pdg=False)
    write_dataset(tmp_path / name, dataset)
    assert_same_rows(read_dataset(tmp_path / name), dataset)


@pytest.mark.parametrize("name", ["list.h5", "list.root", "list.npz"])
def test_particle_list_round_trip(tmp_path: Path, dataset: ZDCDataset, name: str) -> None:
    particles_only = ZDCDataset(None, dataset.particles, dataset.pdg)
    write_dataset(tmp_path / name, particles_only)
    back = read_particles(tmp_path / name)
    assert not back.has_responses
    assert_same_rows(back, particles_only)


def test_particles_of_a_full_file_read_without_responses(tmp_path: Path,
                                                         dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "full.h5", dataset)
    back = read_particles(tmp_path / "full.h5")
    assert back.responses is None
    np.testing.assert_array_equal(back.particles, dataset.particles)


def test_npz_pair_is_found_from_directory_or_either_file(tmp_path: Path,
                                                         dataset: ZDCDataset) -> None:
    write_dataset(tmp_path, dataset)  # a directory: the research file names
    responses_file = tmp_path / "data_nonrandom_responses.npz"
    particles_file = tmp_path / "data_nonrandom_particles.npz"
    assert responses_file.is_file() and particles_file.is_file()
    for path in (tmp_path, responses_file, particles_file):
        assert_same_rows(read_dataset(path), dataset)


def test_written_npz_pair_has_the_research_layout(tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "run.npz", dataset)
    with np.load(tmp_path / "run_responses.npz") as archive:
        responses = archive["arr_0"]
    with np.load(tmp_path / "run_particles.npz") as archive:
        particles = archive["arr_0"]
    assert responses.dtype == np.uint16 and responses.shape == (len(dataset), 44, 44)
    np.testing.assert_array_equal(responses, dataset.responses)
    assert particles.shape == (len(dataset), 10)  # the PDG id as 10th column
    np.testing.assert_array_equal(particles[:, 9], dataset.pdg)


def test_research_npz_pair_with_pdg_column_and_int64_counts(tmp_path: Path,
                                                            dataset: ZDCDataset) -> None:
    table = np.column_stack([dataset.particles.astype(np.float64), dataset.pdg])
    np.savez_compressed(tmp_path / "data_nonrandom_particles.npz", table)
    np.savez_compressed(tmp_path / "data_nonrandom_responses.npz",
                        dataset.responses.astype(np.int64))
    assert_same_rows(read_dataset(tmp_path / "data_nonrandom_responses.npz"), dataset)


def test_npz_particle_list_with_named_arrays(tmp_path: Path, dataset: ZDCDataset) -> None:
    columns = {name: dataset.column(name) for name in PARTICLE_COLUMNS}
    np.savez(tmp_path / "gun.npz", pdg=dataset.pdg, **columns)
    back = read_particles(tmp_path / "gun.npz")
    np.testing.assert_array_equal(back.particles, dataset.particles)
    np.testing.assert_array_equal(back.pdg, dataset.pdg)


def test_npz_stored_in_fortran_order_reads_the_same(tmp_path: Path, dataset: ZDCDataset) -> None:
    fortran = np.asfortranarray(dataset.particles)
    assert not fortran.flags.c_contiguous  # so np.savez stores it column by column
    np.savez(tmp_path / "list.npz", fortran)
    back = read_particles(tmp_path / "list.npz")
    np.testing.assert_array_equal(back.particles, dataset.particles)


def test_csv_particle_list(tmp_path: Path, dataset: ZDCDataset) -> None:
    order = ["pdg", "weight", *reversed(PARTICLE_COLUMNS)]  # any order; unknown columns ignored
    table = np.column_stack([dataset.pdg, np.ones(len(dataset)),
                             *(dataset.column(c).astype(np.float64)
                               for c in reversed(PARTICLE_COLUMNS))])
    lines = ["# particles for a test", ",".join(order), ""]
    lines += [",".join(repr(float(v)) for v in row) for row in table]
    (tmp_path / "gun.csv").write_text("\n".join(lines) + "\n")
    assert detect_format(tmp_path / "gun.csv") == "csv"
    assert count_particles(tmp_path / "gun.csv") == len(dataset)
    back = read_particles(tmp_path / "gun.csv")
    np.testing.assert_array_equal(back.particles, dataset.particles)
    np.testing.assert_array_equal(back.pdg, dataset.pdg)
    chunks = list(iter_particle_chunks(tmp_path / "gun.csv", chunk_size=10))
    assert [c.start for c in chunks] == [0, 10, 20, 30]
    np.testing.assert_array_equal(np.concatenate([c.particles for c in chunks]), back.particles)


def test_hdf5_particle_table_columns_are_reordered_by_name(tmp_path: Path,
                                                           dataset: ZDCDataset) -> None:
    order = list(reversed(PARTICLE_COLUMNS)) + ["pdg"]
    table = np.column_stack([dataset.column(c) for c in reversed(PARTICLE_COLUMNS)]
                            + [dataset.pdg])
    with h5py.File(tmp_path / "gun.h5", "w") as file:
        file.create_dataset("particles", data=table).attrs["columns"] = order
    back = read_particles(tmp_path / "gun.h5")
    np.testing.assert_array_equal(back.particles, dataset.particles)
    np.testing.assert_array_equal(back.pdg, dataset.pdg)


@pytest.mark.parametrize(("name", "write_format"),
                         [(name, fmt) for name, fmt, _ in FORMATS])
@pytest.mark.parametrize("chunk_size", [5, 37, 1000])
def test_streamed_chunks_reassemble_the_file(tmp_path: Path, dataset: ZDCDataset, name: str,
                                             write_format: str | None, chunk_size: int) -> None:
    path = tmp_path / name
    write_dataset(path, dataset, format=write_format)
    assert count_particles(path) == len(dataset)
    chunks = list(iter_data_chunks(path, chunk_size))
    assert [c.start for c in chunks] == list(range(0, len(dataset), chunk_size))
    assert all(len(c) <= chunk_size for c in chunks)
    joined = ZDCDataset(np.concatenate([c.responses for c in chunks]),
                        np.concatenate([c.particles for c in chunks]),
                        np.concatenate([c.pdg for c in chunks]))
    assert_same_rows(joined, dataset)
    particle_chunks = list(iter_particle_chunks(path, chunk_size))
    assert not any(hasattr(c, "responses") for c in particle_chunks)
    np.testing.assert_array_equal(np.concatenate([c.particles for c in particle_chunks]),
                                  dataset.particles)


def test_max_rows_reads_the_first_rows(tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "out.h5", dataset)
    assert_same_rows(read_dataset(tmp_path / "out.h5", max_rows=9), dataset.subset(slice(0, 9)))


def test_calochallenge_file_holds_the_challenge_keys(tmp_path: Path,
                                                     dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "cc.h5", dataset, format="calochallenge")
    with h5py.File(tmp_path / "cc.h5", "r") as file:
        energies = file["incident_energies"][:]
        showers = file["showers"][:]
    assert energies.shape == (len(dataset), 1) and showers.shape == (len(dataset), 44 * 44)
    np.testing.assert_array_equal(energies[:, 0], dataset.column("Energy").astype(np.float64) * 1e3)
    np.testing.assert_array_equal(showers, dataset.responses.reshape(len(dataset), -1))


def test_foreign_calochallenge_file_fills_particles_from_energies(tmp_path: Path) -> None:
    energies_mev = np.array([[1e3], [2.5e5], [7e6]])
    showers = np.arange(3 * 1936, dtype=np.float64).reshape(3, 1936) % 5
    with h5py.File(tmp_path / "foreign.h5", "w") as file:
        file["incident_energies"] = energies_mev
        file["showers"] = showers
    back = read_dataset(tmp_path / "foreign.h5")
    expected = np.zeros((3, 9), dtype=np.float32)
    expected[:, PARTICLE_COLUMNS.index("Energy")] = [1.0, 250.0, 7000.0]
    expected[:, PARTICLE_COLUMNS.index("Pz")] = [1.0, 250.0, 7000.0]
    np.testing.assert_array_equal(back.particles, expected)
    np.testing.assert_array_equal(back.responses.reshape(3, -1), showers)
    assert "Energy and Pz" in back.attrs[CALOCHALLENGE_NOTE_ATTR]


def test_root_file_has_one_branch_per_attribute(tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "out.root", dataset)
    with uproot.open(tmp_path / "out.root") as file:
        tree = file["zdc"]
        assert set(tree.keys()) == {*PARTICLE_COLUMNS, "pdg", "responses"}
        assert tree["responses"].typename.endswith("[1936]")
        np.testing.assert_array_equal(tree["Energy"].array(library="np"),
                                      dataset.column("Energy"))


def test_root_tree_with_another_name_is_used_when_it_is_the_only_one(
        tmp_path: Path, dataset: ZDCDataset) -> None:
    with uproot.recreate(tmp_path / "other.root") as file:
        file["events"] = {c: dataset.column(c) for c in PARTICLE_COLUMNS}  # an RNTuple
    np.testing.assert_array_equal(read_particles(tmp_path / "other.root").particles,
                                  dataset.particles)


def test_format_is_sniffed_for_unknown_extensions_and_can_be_forced(
        tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "data.bin", dataset, format="h5")
    assert detect_format(tmp_path / "data.bin") == "h5"
    write_dataset(tmp_path / "data.zdc", dataset, format="root")
    assert detect_format(tmp_path / "data.zdc") == "root"
    assert_same_rows(read_dataset(tmp_path / "data.zdc", format="root"), dataset)
    write_dataset(tmp_path / "cc.h5", dataset, format="calochallenge")
    assert read_dataset(tmp_path / "cc.h5", format="h5").responses is None  # as a particle list


@pytest.mark.parametrize("name", ["empty.h5", "empty.root", "empty.npz"])
def test_empty_dataset_round_trip(tmp_path: Path, dataset: ZDCDataset, name: str) -> None:
    empty = dataset.subset(slice(0, 0))
    write_dataset(tmp_path / name, empty)
    back = read_dataset(tmp_path / name)
    assert len(back) == 0 and back.particles.shape == (0, 9)
