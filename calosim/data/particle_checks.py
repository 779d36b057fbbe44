"""The range of particle attributes a ZDC simulation covers, checked on whole arrays.

Values nothing can simulate (complex, boolean or text values, NaN, infinities, values
beyond float32) are refused by `as_particle_array`, always. On top of that,
`check_ranges` refuses rows outside the ranges below; `DetectorSimulator.simulate`
applies it to the particles of every simulator unless called with
``allow_out_of_range=True`` (CLI: ``--allow-out-of-range``).

Units as in the particle table: GeV, cm, MeV, e. Rows are counted from 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from calosim.errors import DataFormatError

# The real ZN data span about 1 to 7000 GeV [facts] and LHC protons carry at most 7 TeV,
# so no particle of an LHC collision that reaches a ZDC goes beyond; 10 TeV keeps
# headroom and still catches energies given in MeV (a 2.5 TeV neutron reads 2.5e6).
ENERGY_MAX_GEV = 10_000.0
# E >= |p| up to rounding (float32 storage, unit conversions): 0.1 % of E, plus 1 keV
# so that tiny energies are not held to a tolerance below float32 resolution.
MOMENTUM_TOLERANCE = 1e-3
MOMENTUM_TOLERANCE_GEV = 1e-6
# Above every hadron (the heaviest b-bbar states, about 11 GeV) and the nuclear fragments
# up to A ~ 20; masses given in keV or eV land far beyond it.
MASS_MAX_MEV = 20_000.0
# Whole multiples of e (no free quarks), at most that of the fragments above (Z = 10).
CHARGE_MAX_E = 10.0
CHARGE_TOLERANCE_E = 1e-3
# The ZN front faces are 112.5 m from the interaction point [facts]: a particle made
# farther away than the calorimeters, along any axis, is not one of a ZDC event.
VERTEX_MAX_CM = 11_250.0

_OPT_OUT = "allow_out_of_range=True (--allow-out-of-range) simulates them anyway"


def _checks(particles: np.ndarray) -> list[tuple[np.ndarray, Callable[[np.ndarray], str]]]:
    """(mask of the rows failing it, description of a failing row) for every range."""
    energy, mass, charge = particles[:, 0], particles[:, 7], particles[:, 8]
    # float32 squares of absurd momenta overflow to inf, which correctly fails E >= |p|
    with np.errstate(over="ignore", invalid="ignore"):
        p2 = np.square(particles[:, 4:7]).sum(axis=1)
        limit = energy * (1 + MOMENTUM_TOLERANCE) + MOMENTUM_TOLERANCE_GEV
        momentum_bad = p2 > limit * limit
    return [
        (~((energy > 0) & (energy <= ENERGY_MAX_GEV)),
         lambda r: f"Energy {r[0]:.6g} GeV is outside (0, {ENERGY_MAX_GEV:g}] GeV"),
        (momentum_bad,
         lambda r: f"|p| = {np.sqrt(np.sum(np.square(r[4:7], dtype=np.float64))):.6g} GeV "
                   f"exceeds Energy {r[0]:.6g} GeV"),
        (~((mass >= 0) & (mass <= MASS_MAX_MEV)),
         lambda r: f"mass {r[7]:.6g} MeV is outside [0, {MASS_MAX_MEV:g}] MeV"),
        ((np.abs(charge) > CHARGE_MAX_E) | (np.abs(charge - np.rint(charge)) > CHARGE_TOLERANCE_E),
         lambda r: f"charge {r[8]:.6g} e is not a whole number from -{CHARGE_MAX_E:g} to "
                   f"{CHARGE_MAX_E:g}"),
        ((np.abs(particles[:, 1:4]) > VERTEX_MAX_CM).any(axis=1),
         lambda r: f"vertex ({r[1]:.6g}, {r[2]:.6g}, {r[3]:.6g}) cm lies beyond "
                   f"{VERTEX_MAX_CM:g} cm of the interaction point"),
    ]


def check_ranges(particles: np.ndarray, *, source: str = "particles", first_row: int = 0) -> None:
    """Raise a one-line DataFormatError naming ``source`` and the first row out of range.

    ``particles``: a finite (N, 9) array (see `as_particle_array`); ``first_row``: the
    row number of particles[0] in the file or list it comes from.
    """
    checks = _checks(particles)
    bad = np.logical_or.reduce([mask for mask, _ in checks]) if len(particles) else None
    if bad is None or not bad.any():
        return
    row = int(bad.argmax())
    problem = next(describe(particles[row]) for mask, describe in checks if mask[row])
    raise DataFormatError(
        f"{source}: {int(bad.sum())} row(s) of particles out of range, the first row "
        f"{first_row + row} (0-based): {problem}; {_OPT_OUT}"
    )
