"""Energy scale and resolution of the Monte Carlo against the public full simulation."""

from __future__ import annotations

import numpy as np
import pytest

from calosim.metrics import photon_sums
from calosim.simulators.gun import aimed_particles

N_PER_ENERGY = 1500


@pytest.mark.parametrize("energy", [100.0, 300.0, 1000.0])
def test_central_neutrons_meet_the_full_simulation_scale(simulator, energy):
    sums = photon_sums(simulator.simulate(aimed_particles(2112, energy, N_PER_ENERGY), seed=11))
    # acceptance of the issue around the facts' 0.66-0.69 photons/GeV and ~30 % spread;
    # with 1500 showers the mean is known to ~1 % and the spread to ~2 % (relative)
    assert 0.58 <= sums.mean() / energy <= 0.78
    assert 0.20 <= sums.std() / sums.mean() <= 0.40


def test_neutron_photon_sum_is_linear_in_energy(simulator):
    energies = np.array([100.0, 300.0, 1000.0])
    means = np.array([
        photon_sums(simulator.simulate(aimed_particles(2112, e, N_PER_ENERGY), seed=12)).mean()
        for e in energies
    ])
    slope, intercept = np.polyfit(energies, means, 1)
    # a straight line through the origin within the non-compensation drift of a few %
    assert np.all(np.abs(means - slope * energies - intercept) / means < 0.05)
    assert abs(intercept) < 0.05 * means[-1]


@pytest.mark.parametrize("energy", [10.0, 30.0, 60.0])
def test_central_photons_give_one_photon_per_gev(simulator, energy):
    sums = photon_sums(simulator.simulate(aimed_particles(22, energy, N_PER_ENERGY), seed=13))
    assert 0.85 <= sums.mean() / energy <= 1.15


def test_em_showers_give_more_light_per_gev_than_hadronic(simulator):
    photon = photon_sums(simulator.simulate(aimed_particles(22, 300.0, 1000), seed=14)).mean()
    neutron = photon_sums(simulator.simulate(aimed_particles(2112, 300.0, 1000), seed=14)).mean()
    assert neutron < 0.8 * photon


def test_photon_resolution_improves_with_energy(simulator):
    spreads = []
    for energy in (10.0, 60.0, 300.0):
        sums = photon_sums(simulator.simulate(aimed_particles(22, energy, 1000), seed=15))
        spreads.append(sums.std() / sums.mean())
    assert spreads[0] > 1.5 * spreads[1] > 1.5 * 1.5 * spreads[2]
