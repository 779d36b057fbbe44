"""The DetectorSimulator contract of the Monte Carlo: output, seeds, chunking, errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from calosim.errors import CalosimError, DataFormatError
from calosim.metrics import photon_sums
from calosim.simulators.base import DetectorSimulator
from calosim.simulators.gun import ParticleGun, aimed_particles, simulate_dataset
from calosim.simulators.montecarlo import MonteCarloConfig, MonteCarloSimulator


@pytest.fixture(scope="module")
def gun_particles() -> np.ndarray:
    return ParticleGun().sample(3000, seed=4).particles


def test_responses_are_float32_integer_counts(simulator, gun_particles):
    responses = simulator.simulate(gun_particles, seed=1)
    assert isinstance(simulator, DetectorSimulator) and simulator.name == "mc"
    assert responses.shape == (3000, 44, 44) and responses.dtype == np.float32
    assert (responses >= 0).all() and (responses == np.round(responses)).all()
    assert simulator.simulate(gun_particles[:0], seed=1).shape == (0, 44, 44)


def test_same_seed_identical_different_seeds_independent(simulator, gun_particles):
    first = simulator.simulate(gun_particles, seed=7)
    np.testing.assert_array_equal(first, simulator.simulate(gun_particles, seed=7))
    other = simulator.simulate(gun_particles, seed=8)
    lit = (photon_sums(first) > 0) & (photon_sums(other) > 0)
    differ = (first[lit] != other[lit]).any(axis=(1, 2))
    assert differ.mean() > 0.99
    # independent noise: the two photon sums of the same particles decorrelate at fixed
    # energy, so the correlation of their fluctuations around the truth is small
    neutrons = aimed_particles(2112, 500.0, 2000)
    a, b = (photon_sums(simulator.simulate(neutrons, seed=s)) for s in (1, 2))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1


def test_chunked_and_unchunked_runs_are_identical(simulator, gun_particles):
    whole = simulator.simulate(gun_particles, seed=5)
    parts = np.concatenate([
        simulator.simulate(gun_particles[:2048], seed=5),
        simulator.simulate(gun_particles[2048:], seed=5, first_index=2048),
    ])
    np.testing.assert_array_equal(whole, parts)


def test_particle_tables_are_accepted(simulator):
    particles = aimed_particles(2112, 300.0, 10)
    table = {name: particles[:, i] for i, name in enumerate(
        ("Energy", "Vx", "Vy", "Vz", "Px", "Py", "Pz", "mass", "charge"))}
    np.testing.assert_array_equal(simulator.simulate(table, seed=2),
                                  simulator.simulate(particles, seed=2))


def test_photon_batches_do_not_change_the_photon_statistics(simulator, monkeypatch):
    import calosim.simulators.montecarlo as montecarlo

    particles = aimed_particles(22, 300.0, 400)
    reference = photon_sums(simulator.simulate(particles, seed=9))
    monkeypatch.setattr(montecarlo, "PHOTON_BATCH", 1000)  # many small batches per block
    batched = photon_sums(simulator.simulate(particles, seed=9))
    assert batched.mean() == pytest.approx(reference.mean(), rel=0.02)
    np.testing.assert_array_equal(batched, photon_sums(simulator.simulate(particles, seed=9)))


def test_negative_energy_is_a_data_error(simulator):
    particles = aimed_particles(2112, 300.0, 3)
    particles[1, 0] = -1.0
    with pytest.raises(DataFormatError, match="1 row"):
        simulator.simulate(particles, seed=1)


@pytest.mark.parametrize("change", [
    {"moliere_radius_cm": -1.0}, {"em_core_fraction": 1.5}, {"depth_cm": 0.0},
    {"photons_per_fibre_crossing": 0.5}, {"spray_decay_cm": float("nan")},
])
def test_unphysical_configuration_is_refused(change):
    with pytest.raises(CalosimError):
        replace(MonteCarloConfig(), **change)


def test_describe_lists_every_parameter(simulator):
    description = simulator.describe()
    assert description["simulator"] == "mc"
    assert description["moliere_radius_cm"] == pytest.approx(0.93)
    assert set(MonteCarloConfig.__dataclass_fields__) <= set(description)


def test_configuration_changes_the_physics():
    brighter = MonteCarloSimulator(MonteCarloConfig(em_light_per_gev=2.0))
    photons = aimed_particles(22, 100.0, 500)
    ratio = (photon_sums(brighter.simulate(photons, seed=3)).mean()
             / photon_sums(MonteCarloSimulator().simulate(photons, seed=3)).mean())
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_default_gun_has_the_real_sparsity(simulator):
    _, _, responses = simulate_dataset(4000, seed=10, simulator=simulator)
    sums = photon_sums(responses)
    # real data: 96 % zero pixels, 22 % empty responses; the Monte Carlo's hits are
    # brighter (1 photon/GeV), so it is emptier but as sparse
    assert abs((responses == 0).mean() - 0.96) < 0.015
    assert 0.2 < (sums == 0).mean() < 0.5
    assert np.percentile(sums[sums > 0], 25) < 1000
