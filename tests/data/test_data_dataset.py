"""ZDCDataset behaviour, file summaries for `calosim info`, and the committed sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calosim.data import (
    ZDCDataset,
    describe_file,
    pdg_name,
    read_dataset,
    write_dataset,
)
from calosim.errors import CalosimError, DataFormatError

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "zdc_sample.h5"


def test_dataset_normalises_its_arrays(dataset: ZDCDataset) -> None:
    flat = ZDCDataset(dataset.responses.reshape(len(dataset), -1).astype(np.int64),
                      dataset.particles.astype(np.float64), dataset.pdg.astype(np.int64))
    assert flat.responses.shape == (len(dataset), 44, 44) and flat.responses.dtype == np.float32
    assert flat.particles.dtype == np.float32 and flat.pdg.dtype == np.int32


@pytest.mark.parametrize(("responses", "pdg"), [
    (np.zeros((3, 44, 44)), None),
    (None, np.zeros(3)),
    (np.zeros((4, 40, 40)), None),
])
def test_dataset_rejects_mismatched_arrays(responses: np.ndarray | None,
                                           pdg: np.ndarray | None) -> None:
    with pytest.raises(DataFormatError, match="dataset"):
        ZDCDataset(responses, np.ones((4, 9)), pdg)


def test_subset_and_column(dataset: ZDCDataset) -> None:
    rows = np.array([3, 0, 7])
    part = dataset.subset(rows)
    assert len(part) == 3
    np.testing.assert_array_equal(part.responses, dataset.responses[rows])
    np.testing.assert_array_equal(part.column("Pz"), dataset.particles[rows, 6])
    np.testing.assert_array_equal(part.column("pdg"), dataset.pdg[rows])
    assert part.attrs == dataset.attrs and part.attrs is not dataset.attrs
    with pytest.raises(CalosimError, match="energy"):
        dataset.column("energy")


def test_describe_file_summarises_in_chunks(tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "out.h5", dataset)
    info = describe_file(tmp_path / "out.h5", chunk_size=8)
    photons = dataset.responses.sum(axis=(1, 2))
    assert info["format"] == "h5" and info["n"] == len(dataset) and info["has_responses"]
    assert info["attrs"]["seed"] == 11
    assert info["empty_fraction"] == pytest.approx(np.mean(photons == 0))
    assert info["fraction_at_least_10_photons"] == pytest.approx(np.mean(photons >= 10))
    expected = np.percentile(dataset.column("Energy"), [5, 25, 50, 75, 95])
    assert list(info["energy_quantiles_gev"]) == ["5%", "25%", "50%", "75%", "95%"]
    np.testing.assert_allclose(list(info["energy_quantiles_gev"].values()), expected, rtol=1e-6)
    codes, counts = np.unique(dataset.pdg, return_counts=True)
    species = info["species"]
    assert sum(s["count"] for s in species.values()) == len(dataset)
    for code, count in zip(codes, counts, strict=True):
        assert species[pdg_name(code)] == {"pdg": code, "count": count,
                                           "fraction": count / len(dataset)}
    assert [s["count"] for s in species.values()] == sorted(counts, reverse=True)


def test_describe_particle_list(tmp_path: Path, dataset: ZDCDataset) -> None:
    write_dataset(tmp_path / "list.root", ZDCDataset(None, dataset.particles))
    info = describe_file(tmp_path / "list.root")
    assert info["format"] == "root" and not info["has_responses"]
    assert info["species"] is None and info["empty_fraction"] is None


@pytest.mark.parametrize(("code", "name"), [
    (22, "photon"), (2112, "neutron"), (-2112, "anti-neutron"), (2212, "proton"),
    (-2212, "anti-proton"), (3122, "Lambda"), (-3122, "anti-Lambda"), (211, "pi+"),
    (-211, "pi-"), (321, "K+"), (-321, "K-"), (11, "electron"), (-11, "positron"),
    (1000020040, "nucleus Z=2 A=4"), (12345, "pdg 12345"),
])
def test_pdg_names(code: int, name: str) -> None:
    assert pdg_name(code) == name


def test_committed_sample_is_a_valid_small_file() -> None:
    assert SAMPLE.stat().st_size < 200_000
    sample = read_dataset(SAMPLE)
    assert len(sample) >= 100 and sample.responses is not None and sample.pdg is not None
    assert np.all(sample.responses >= 0) and np.all(sample.responses == np.rint(sample.responses))
    assert sample.attrs["simulator"] and "seed" in sample.attrs
    energy = sample.column("Energy").astype(np.float64)
    assert energy.min() >= 1 and energy.max() <= 7100
    momentum_squared = sum(sample.column(c).astype(np.float64) ** 2 for c in ("Px", "Py", "Pz"))
    mass_gev = sample.column("mass") / 1e3
    np.testing.assert_allclose(energy**2, momentum_squared + mass_gev**2, rtol=1e-5)
    info = describe_file(SAMPLE)
    assert 0 < info["empty_fraction"] < 0.5
    assert set(info["species"]) <= {pdg_name(c) for c in (22, 2112, 2212, 3122, 211, -211)}
