"""ResponseWriter: atomic files, growing chunk by chunk, widening counts, provenance."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
from data_helpers import assert_same_rows

from calosim.data import (
    ResponseWriter,
    ZDCDataset,
    atomic_output,
    read_dataset,
    write_dataset,
)
from calosim.errors import CalosimError, DataFormatError

WRITER_CASES = [("out.h5", None), ("out.root", None), ("out.npz", None),
                ("out.h5", "calochallenge")]


class Interrupted(Exception):
    """Stands for anything that goes wrong while a file is being written."""


@pytest.mark.parametrize(("name", "format"), WRITER_CASES)
def test_exception_inside_the_block_leaves_no_file(tmp_path: Path, dataset: ZDCDataset,
                                                    name: str, format: str | None) -> None:
    with pytest.raises(Interrupted), ResponseWriter(tmp_path / name, format=format) as writer:
        writer.append(dataset.particles, dataset.responses, dataset.pdg)
        raise Interrupted
    assert os.listdir(tmp_path) == []  # neither the file nor a temporary one


@pytest.mark.parametrize(("name", "format"), WRITER_CASES)
def test_exception_keeps_an_existing_file_intact(tmp_path: Path, dataset: ZDCDataset,
                                                 name: str, format: str | None) -> None:
    write_dataset(tmp_path / name, dataset, format=format)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(Interrupted), ResponseWriter(tmp_path / name, format=format) as writer:
        writer.append(dataset.particles[:3], dataset.responses[:3])
        raise Interrupted
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_bad_rows_mid_file_abort_the_write(tmp_path: Path, dataset: ZDCDataset) -> None:
    path = tmp_path / "out.h5"
    bad = dataset.particles[:4].copy()
    bad[2, 0] = np.nan
    with pytest.raises(DataFormatError, match="NaN"), ResponseWriter(path) as writer:
        writer.append(dataset.particles[:4], dataset.responses[:4])
        writer.append(bad, dataset.responses[:4])
    assert os.listdir(tmp_path) == []


def test_successful_write_replaces_an_existing_file(tmp_path: Path, dataset: ZDCDataset) -> None:
    path = tmp_path / "out.h5"
    write_dataset(path, dataset)
    write_dataset(path, dataset.subset(slice(0, 5)))
    assert len(read_dataset(path)) == 5
    assert os.listdir(tmp_path) == ["out.h5"]


def test_written_file_gets_ordinary_permissions(tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "out.h5", dataset)
    (tmp_path / "plain").write_text("")
    mode = stat.S_IMODE((tmp_path / "out.h5").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_output_directories_are_created(tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "runs" / "a" / "out.h5", dataset)
    assert_same_rows(read_dataset(tmp_path / "runs" / "a" / "out.h5"), dataset)


@pytest.mark.parametrize(("name", "format"), WRITER_CASES)
def test_appending_chunks_equals_writing_at_once(tmp_path: Path, dataset: ZDCDataset,
                                                 name: str, format: str | None) -> None:
    with ResponseWriter(tmp_path / name, {"seed": 5}, format=format) as writer:
        for start in range(0, len(dataset), 10):
            rows = slice(start, start + 10)
            writer.append(dataset.particles[rows], dataset.responses[rows], dataset.pdg[rows],
                          channels=np.ones((len(dataset.particles[rows]), 5)))
        assert writer.n_written == len(dataset)
    assert_same_rows(read_dataset(tmp_path / name), dataset)
    if name.endswith(".h5"):
        with h5py.File(tmp_path / name, "r") as file:
            np.testing.assert_array_equal(file["channels"][:], np.ones((len(dataset), 5)))


@pytest.mark.parametrize("name", ["out.h5", "out.npz"])
def test_counts_widen_to_uint32_only_when_needed(tmp_path: Path, dataset: ZDCDataset,
                                                 name: str) -> None:
    bright = dataset.responses[:5].copy()
    bright[1, 3, 4] = 70_000
    with ResponseWriter(tmp_path / name) as writer:
        writer.append(dataset.particles, dataset.responses)
        writer.append(dataset.particles[:5], bright)
    back = read_dataset(tmp_path / name)
    np.testing.assert_array_equal(back.responses,
                                  np.concatenate([dataset.responses, bright]))
    assert _stored_count_dtype(tmp_path / name) == np.uint32
    write_dataset(tmp_path / "dim" / name, dataset)
    assert _stored_count_dtype(tmp_path / "dim" / name) == np.uint16


def _stored_count_dtype(path: Path) -> np.dtype:
    if path.suffix == ".h5":
        with h5py.File(path, "r") as file:
            return file["responses"].dtype
    with np.load(path.with_name(path.stem + "_responses.npz")) as archive:
        return archive["arr_0"].dtype


def test_model_output_counts_are_rounded(tmp_path: Path, dataset: ZDCDataset) -> None:
    noisy = dataset.responses + 0.3
    write_dataset(tmp_path / "out.h5", ZDCDataset(noisy, dataset.particles))
    np.testing.assert_array_equal(read_dataset(tmp_path / "out.h5").responses,
                                  dataset.responses)


def test_provenance_attributes(tmp_path: Path, dataset: ZDCDataset) -> None:
    attrs = {"seed": 7, "simulator": "mc", "tags": ["a", "b"], "energies": [1.5, 2.5],
             "options": {"parity": 0}}
    with ResponseWriter(tmp_path / "out.h5", attrs) as writer:
        writer.append(dataset.particles, dataset.responses)
    back = read_dataset(tmp_path / "out.h5").attrs
    assert back["seed"] == 7 and back["simulator"] == "mc"
    assert back["tags"] == ["a", "b"] and back["energies"] == [1.5, 2.5]
    assert back["options"] == '{"parity": 0}'  # nested values are kept as JSON text
    assert back["calosim_version"] and back["creator"]
    write_dataset(tmp_path / "copy.h5", read_dataset(tmp_path / "out.h5"),
                  attrs={"creator": "calosim convert"})
    copied = read_dataset(tmp_path / "copy.h5").attrs
    assert copied["creator"] == "calosim convert" and copied["seed"] == 7


def test_append_outside_the_block_is_refused(tmp_path: Path, dataset: ZDCDataset) -> None:
    writer = ResponseWriter(tmp_path / "out.h5")
    with pytest.raises(CalosimError, match="with-block"):
        writer.append(dataset.particles, dataset.responses)


def test_every_append_must_give_the_same_arrays(tmp_path: Path, dataset: ZDCDataset) -> None:
    with pytest.raises(DataFormatError, match="same arrays"), \
            ResponseWriter(tmp_path / "out.h5") as writer:
        writer.append(dataset.particles[:3], dataset.responses[:3], dataset.pdg[:3])
        writer.append(dataset.particles[:3], dataset.responses[:3])
    assert os.listdir(tmp_path) == []


def test_unknown_output_format_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CalosimError, match="format"):
        ResponseWriter(tmp_path / "out.txt")
    with pytest.raises(CalosimError, match="unknown data format"):
        ResponseWriter(tmp_path / "out.h5", format="parquet")


def test_atomic_output_for_other_files(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_text("old")
    with pytest.raises(Interrupted), atomic_output(target) as temp:
        temp.write_text("half")
        raise Interrupted
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.pt"]
    with atomic_output(target) as temp:
        temp.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["model.pt"]
