"""The particle gun and simulate_dataset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from calosim.data.schema import as_particle_array
from calosim.errors import CalosimError
from calosim.metrics import photon_sums
from calosim.simulators import physics
from calosim.simulators.gun import (
    PDG_NAMES,
    SPECIES,
    GunConfig,
    ParticleGun,
    aimed_particles,
    simulate_dataset,
)


@pytest.fixture(scope="module")
def sample():
    return ParticleGun().sample(30000, seed=1)


def test_sample_layout(sample):
    assert sample.particles.shape == (30000, 9) and sample.particles.dtype == np.float32
    assert sample.pdg.shape == (30000,) and sample.pdg.dtype == np.int64
    assert len(sample) == 30000
    table = sample.with_pdg()
    assert table.shape == (30000, 10)
    np.testing.assert_array_equal(table[:, 9], sample.pdg)
    np.testing.assert_array_equal(as_particle_array(table), sample.particles)


def test_species_mix_follows_the_real_dataset(sample):
    fractions = {pdg: np.mean(sample.pdg == pdg) for pdg in PDG_NAMES}
    # binomial standard errors at n = 30000 are <= 0.003
    assert fractions[22] == pytest.approx(0.61, abs=0.012)
    assert fractions[2112] == pytest.approx(0.23, abs=0.012)
    assert fractions[2212] == pytest.approx(0.05, abs=0.006)
    assert fractions[3122] == pytest.approx(0.03, abs=0.005)
    charge = sample.particles[:, 8]
    assert charge.mean() == pytest.approx(0.0629, abs=0.01)  # facts
    assert charge.std() == pytest.approx(0.2565, abs=0.02)


def test_masses_and_charges_match_the_species_table(sample):
    for pdg in np.unique(sample.pdg):
        rows = sample.particles[sample.pdg == pdg]
        assert np.all(rows[:, 7] == np.float32(SPECIES[pdg].mass_mev))
        assert np.all(rows[:, 8] == SPECIES[pdg].charge)
    assert PDG_NAMES[2112] == "neutron" and PDG_NAMES[22] == "photon"


def test_kinematics_are_consistent(sample):
    p = sample.particles.astype(np.float64)
    energy, momentum = p[:, 0], np.linalg.norm(p[:, 4:7], axis=1)
    mass = p[:, 7] / 1000.0
    np.testing.assert_allclose(energy**2, momentum**2 + mass**2, rtol=1e-5)
    assert energy.min() >= 1.0 and energy.max() <= 7000.0


def test_energy_spectrum_matches_the_real_dataset(sample):
    energy = sample.particles[:, 0].astype(np.float64)
    assert 450 < np.median(energy) < 650
    assert 1200 < energy.mean() < 1450  # facts: 1367, std 1260
    assert 1150 < energy.std() < 1450
    assert np.mean(energy < 10) > 0.001  # the spectrum reaches down to ~1 GeV


def test_momenta_vertices_and_sides_match_the_real_dataset(sample):
    p = sample.particles.astype(np.float64)
    assert p[:, 4].std() == pytest.approx(0.2346, rel=0.03)
    assert p[:, 5].std() == pytest.approx(0.2581, rel=0.03)
    assert p[:, 3].std() == pytest.approx(0.0245, rel=0.03)
    assert p[:, 1].std() == pytest.approx(4.15e-6, rel=0.03)
    assert np.mean(p[:, 6] > 0) == pytest.approx(0.5, abs=0.012)


def test_sampling_is_reproducible_and_chunk_invariant():
    gun = ParticleGun()
    whole = gun.sample(2500, seed=3)
    parts = [gun.sample(1024, seed=3), gun.sample(1476, seed=3, first_index=1024)]
    np.testing.assert_array_equal(whole.particles, np.concatenate([p.particles for p in parts]))
    np.testing.assert_array_equal(whole.pdg, np.concatenate([p.pdg for p in parts]))
    assert not np.array_equal(whole.particles, gun.sample(2500, seed=4).particles)


def test_simulate_dataset_matches_simulating_the_gun(simulator):
    particles, pdg, responses = simulate_dataset(1500, seed=6, simulator=simulator,
                                                 chunk_size=1024)
    sample = ParticleGun().sample(1500, seed=6)
    np.testing.assert_array_equal(particles, sample.particles)
    np.testing.assert_array_equal(pdg, sample.pdg)
    np.testing.assert_array_equal(responses, simulator.simulate(sample.particles, seed=6))


def test_min_photons_keeps_sampling_reproducibly(simulator):
    threshold = physics.REAL_DATASET_MIN_PHOTONS
    particles, pdg, responses = simulate_dataset(2500, seed=7, simulator=simulator,
                                                 min_photons=threshold, chunk_size=1024)
    assert len(particles) == len(pdg) == len(responses) == 2500
    assert photon_sums(responses).min() >= threshold
    # the gun's charged particles are bent away: far fewer survive the cut
    assert np.mean(pdg == 2212) < 0.02
    again = simulate_dataset(2500, seed=7, simulator=simulator, min_photons=threshold,
                             chunk_size=4096)
    for a, b in zip((particles, pdg, responses), again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unreachable_min_photons_is_reported(simulator):
    with pytest.raises(CalosimError, match="only 0 of 1"):
        simulate_dataset(1, seed=1, simulator=simulator, min_photons=1e9, chunk_size=1024)


@pytest.mark.parametrize("kwargs", [{"chunk_size": 1000}, {"n": -1}, {"min_photons": -1}])
def test_simulate_dataset_rejects_bad_arguments(kwargs):
    arguments = {"n": 10, "seed": 1, **kwargs}
    with pytest.raises(CalosimError):
        simulate_dataset(**arguments)


@pytest.mark.parametrize("change", [
    {"species_fractions": ((22, 0.5), (999, 0.5))}, {"species_fractions": ((22, -1.0),)},
    {"energy_min_gev": 10.0, "energy_max_gev": 5.0}, {"leading_fraction": 2.0},
])
def test_bad_gun_configuration_is_refused(change):
    with pytest.raises(CalosimError):
        replace(GunConfig(), **change)


def test_custom_species_mix():
    neutrons_only = ParticleGun(GunConfig(species_fractions=((2112, 1.0),))).sample(100, seed=2)
    assert (neutrons_only.pdg == 2112).all()


def test_aimed_particles_reach_the_requested_point(simulator):
    particles = aimed_particles(22, 50.0, 3, x_cm=1.0, y_cm=-2.0, side=-1)
    x, y, hits = simulator.impact_point(particles)
    np.testing.assert_allclose(x, 1.0, atol=1e-4)
    np.testing.assert_allclose(y, -2.0, atol=1e-4)
    assert hits.all() and (particles[:, 6] < 0).all()
    with pytest.raises(CalosimError):
        aimed_particles(3122, 1.0, 1)  # below the Lambda mass
