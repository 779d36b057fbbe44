"""Property-based tests: whatever bytes a particle file holds, reading it gives either
finite particles of the right shape or one DataFormatError line naming the file; never
another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from calosim.data import ZDCDataset, read_particles, write_dataset
from calosim.data.schema import PARTICLE_COLUMNS
from calosim.errors import DataFormatError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read_or_one_line_error(path: Path) -> np.ndarray | None:
    try:
        particles = read_particles(path).particles
    except DataFormatError as error:
        text = str(error)
        assert "\n" not in text and path.name in text, text
        return None
    assert particles.ndim == 2 and particles.shape[1] == len(PARTICLE_COLUMNS)
    assert particles.dtype == np.float32 and np.isfinite(particles).all()
    return particles


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", " ", "abc", "1e400", "-0", "0x10", "1,5", '"3"', "nan", "1_000"]),
)
HEADERS = st.one_of(
    st.just(",".join(PARTICLE_COLUMNS)),
    st.just("\ufeff" + ",".join(PARTICLE_COLUMNS) + ",pdg"),
    st.permutations(list(PARTICLE_COLUMNS)).map(",".join),
    st.lists(st.sampled_from([*PARTICLE_COLUMNS, "pdg", "x", ""]), max_size=11).map(",".join),
)


@FUZZ
@given(header=HEADERS, rows=st.lists(st.lists(NUMBERS, min_size=0, max_size=11), max_size=6),
       comments=st.booleans())
def test_any_csv_gives_particles_or_one_line(header: str, rows: list[list[str]],
                                             comments: bool) -> None:
    lines = [header] + [",".join(row) for row in rows]
    if comments:
        lines.insert(1, "# a comment")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "particles.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        particles = _read_or_one_line_error(path)
    if particles is not None:
        assert len(particles) <= len(rows)


@FUZZ
@given(dtype=st.sampled_from(["f4", "f8", "i4", "u1", "?", "c8", "U3", "f2"]),
       shape=st.lists(st.integers(0, 11), min_size=0, max_size=3).map(tuple),
       fill=st.floats(allow_nan=True, allow_infinity=True))
@example(dtype="f2", shape=(1, 10), fill=0.0)  # float16 PDG ids
def test_any_npz_array_gives_particles_or_one_line(dtype: str, shape: tuple[int, ...],
                                                   fill: float) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "data_nonrandom_particles.npz"
        with np.errstate(all="ignore"):  # the cast of the fill value may overflow
            array = np.full(shape, fill).astype(dtype)
        np.savez(path, arr_0=array)
        _read_or_one_line_error(path)


def _valid_file(directory: Path, suffix: str) -> Path:
    rng = np.random.default_rng(0)
    particles = rng.uniform(1.0, 2.0, (40, 9)).astype(np.float32)
    responses = rng.poisson(1.0, (40, 44, 44)).astype(np.float32)
    name = "data_nonrandom_particles.npz" if suffix == ".npz" else f"zn{suffix}"
    path = directory / name
    write_dataset(path, ZDCDataset(responses=responses, particles=particles))
    return path


@pytest.fixture(scope="module", params=[".h5", ".root", ".npz"])
def valid_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _valid_file(tmp_path_factory.mktemp("valid"), request.param)


@FUZZ
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0.0, 1.0),
                                                          st.integers(0, 255)), max_size=8))
@example(cut=1.0, flips=[(0.033076326615132164, 64)])  # uproot: NotImplementedError (ROOT)
@example(cut=1.0, flips=[(0.956970453375424, 1)])  # zipfile: compression method (npz)
def test_a_damaged_file_gives_particles_or_one_line(valid_file: Path, cut: float,
                                                    flips: list[tuple[float, int]]) -> None:
    data = bytearray(valid_file.read_bytes())
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(cut * len(data)))] if cut < 1.0 else data
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / valid_file.name
        path.write_bytes(bytes(data))
        _read_or_one_line_error(path)
