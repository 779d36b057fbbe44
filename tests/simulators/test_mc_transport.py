"""Transport to the face, impact points, misses and the response centroid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from calosim.metrics import centroids, photon_sums
from calosim.simulators import physics
from calosim.simulators.gun import aimed_particles
from calosim.simulators.montecarlo import MonteCarloSimulator


def test_neutrals_fly_straight_on_both_sides(simulator):
    # Energy, Vx, Vy, Vz, Px, Py, Pz, mass, charge
    particles = np.array([
        [1000.0, 0.01, -0.02, 0.0, 0.2, -0.1, 1000.0, 939.6, 0.0],
        [1000.0, 0.01, -0.02, 0.0, 0.2, -0.1, -1000.0, 939.6, 0.0],
        [500.0, 0.0, 0.0, 50.0, 0.0, 0.1, 500.0, 0.0, 0.0],
    ])
    x, y, hits = simulator.impact_point(particles)
    distance = physics.ZN_FACE_DISTANCE_CM
    np.testing.assert_allclose(x[:2], 0.01 + 0.2 / 1000.0 * distance, rtol=1e-5)
    np.testing.assert_allclose(y[:2], -0.02 - 0.1 / 1000.0 * distance, rtol=1e-5)
    # a vertex 50 cm towards the face shortens the flight
    np.testing.assert_allclose(y[2], 0.1 / 500.0 * (distance - 50.0), rtol=1e-5)
    assert hits.tolist() == [True, True, True]


def test_dipoles_bend_charged_particles_horizontally_by_charge_over_momentum(simulator):
    protons = aimed_particles(2212, physics.BEAM_ENERGY_PER_NUCLEON_GEV, 1)
    negative = protons.copy()
    negative[:, 8] = -1.0
    slower = aimed_particles(2212, physics.BEAM_ENERGY_PER_NUCLEON_GEV / 2, 1)
    x, y, hits = simulator.impact_point(np.concatenate([protons, negative, slower]))
    assert x[0] == pytest.approx(physics.ZP_OFFSET_CM, rel=1e-3)  # on the proton calorimeter
    assert x[1] == pytest.approx(-x[0])
    assert x[2] == pytest.approx(2 * x[0], rel=1e-3)
    np.testing.assert_allclose(y, 0.0, atol=1e-6)
    assert not hits.any()


def test_particles_without_longitudinal_momentum_never_arrive(simulator):
    particle = np.array([[10.0, 0, 0, 0, 10.0, 0, 0.0, 0, 0]])
    x, _, hits = simulator.impact_point(particle)
    assert np.isinf(x[0]) and not hits[0]
    assert simulator.simulate(particle, seed=1).sum() == 0


@pytest.mark.parametrize(("pdg", "energy", "x", "y", "tolerance"), [
    (22, 200.0, -2.0, 1.0, 0.06),
    (22, 200.0, 1.5, -2.5, 0.1),
    (2112, 1000.0, 1.0, -1.0, 0.15),
    (2112, 1000.0, -2.5, 2.5, 0.3),  # the lateral leak at the edge pulls the centroid inwards
])
def test_response_centroid_follows_the_impact_point(simulator, pdg, energy, x, y, tolerance):
    particles = aimed_particles(pdg, energy, 400, x, y)
    impact_x, impact_y, hits = simulator.impact_point(particles)
    np.testing.assert_allclose(impact_x, x, atol=1e-4)
    assert hits.all()
    centres = centroids(simulator.simulate(particles, seed=21))
    centre_x, centre_y = centres[~np.isnan(centres[:, 0])].T
    assert centre_x.size > 350
    assert abs(centre_x.mean() - x) < tolerance and abs(centre_y.mean() - y) < tolerance


def test_row_index_is_the_horizontal_coordinate(simulator):
    # aimed at the centre of pixel [37, 21]: ((37 - 21.5) * 0.16, (21 - 21.5) * 0.16) cm
    particles = aimed_particles(22, 500.0, 50, x_cm=2.48, y_cm=-0.08)
    image = simulator.simulate(particles, seed=3).sum(0)
    assert np.unravel_index(np.argmax(image), image.shape) == (37, 21)


def test_beam_energy_protons_give_almost_nothing(simulator):
    energy = physics.BEAM_ENERGY_PER_NUCLEON_GEV
    protons = photon_sums(simulator.simulate(aimed_particles(2212, energy, 2000), seed=5))
    neutrons = photon_sums(simulator.simulate(aimed_particles(2112, energy, 500), seed=5))
    assert protons.mean() < 0.01 * neutrons.mean()
    assert np.mean(protons < 10) > 0.7


def test_misses_give_low_count_or_empty_responses(simulator):
    hit = photon_sums(simulator.simulate(aimed_particles(2112, 1000.0, 1000), seed=6)).mean()
    outside = physics.ZN_HALF_WIDTH_CM
    near, mid, far = (
        photon_sums(simulator.simulate(aimed_particles(2112, 1000.0, 1000, outside + d, 0), seed=6))
        for d in (1.0, 10.0, physics.SPRAY_MAX_DISTANCE_CM + 5.0)
    )
    assert near.mean() < 0.3 * hit
    assert mid.mean() < 0.05 * hit and mid.mean() < near.mean()
    assert np.mean(mid == 0) > 0.2
    assert far.max() == 0


def test_late_first_interactions_leak(simulator):
    neutrons = aimed_particles(2112, 1000.0, 2000)
    sums = photon_sums(simulator.simulate(neutrons, seed=8))
    # the 8.7 interaction lengths leave a low tail of late starts; EM showers have none
    photons = photon_sums(simulator.simulate(aimed_particles(22, 700.0, 2000), seed=8))
    assert np.mean(sums < 0.25 * sums.mean()) > 0.002
    assert np.mean(photons < 0.25 * photons.mean()) == 0
    # the same showers in a much longer or a much shorter absorber
    deep, shallow = (
        photon_sums(MonteCarloSimulator(replace(simulator.config, depth_cm=depth))
                    .simulate(neutrons, seed=8))
        for depth in (1000.0, 30.0)
    )
    assert deep.mean() > 1.03 * sums.mean()
    assert shallow.mean() < 0.7 * sums.mean()
