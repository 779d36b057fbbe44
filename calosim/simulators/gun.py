"""The particle gun: particles whose statistics follow the real ZN dataset, and a helper
that simulates a whole dataset of (particles, PDG ids, responses).

Randomness is drawn per block of RANDOM_BLOCK particles like the simulators, from a
stream derived from the seed but independent of the simulator's stream for that seed:
sampling in chunks gives the same particles as sampling at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from calosim.data.schema import IMAGE_SIZE, N_ATTRIBUTES
from calosim.errors import CalosimError
from calosim.simulators import physics as phys
from calosim.simulators.base import RANDOM_BLOCK, DetectorSimulator, block_generators
from calosim.simulators.montecarlo import MonteCarloSimulator
from calosim.simulators.physics import SPECIES, Species

PDG_NAMES: dict[int, str] = {pdg: s.name for pdg, s in SPECIES.items()}
# Distinguishes the gun's random stream from a simulator's stream of the same seed.
_GUN_STREAM_KEY = 0x6775_6E
# Energy redraws before giving up on a configuration that cannot be satisfied.
_MAX_ENERGY_REDRAWS = 1000

__all__ = ["PDG_NAMES", "SPECIES", "GunConfig", "GunSample", "ParticleGun", "Species",
           "aimed_particles", "simulate_dataset"]


@dataclass(frozen=True)
class GunConfig:
    """Statistics of the sampled particles; defaults and sources in physics.py."""

    species_fractions: tuple[tuple[int, float], ...] = phys.GUN_SPECIES_FRACTIONS
    energy_min_gev: float = phys.GUN_ENERGY_MIN_GEV
    energy_max_gev: float = phys.GUN_ENERGY_MAX_GEV
    soft_median_gev: float = phys.GUN_SOFT_MEDIAN_GEV
    soft_log_sigma: float = phys.GUN_SOFT_LOG_SIGMA
    leading_fraction: float = phys.GUN_LEADING_FRACTION
    leading_median_gev: float = phys.GUN_LEADING_MEDIAN_GEV
    leading_log_sigma: float = phys.GUN_LEADING_LOG_SIGMA
    px_mean_std_gev: tuple[float, float] = phys.GUN_PX_MEAN_STD_GEV
    py_mean_std_gev: tuple[float, float] = phys.GUN_PY_MEAN_STD_GEV
    vx_mean_std_cm: tuple[float, float] = phys.GUN_VX_MEAN_STD_CM
    vy_mean_std_cm: tuple[float, float] = phys.GUN_VY_MEAN_STD_CM
    vz_mean_std_cm: tuple[float, float] = phys.GUN_VZ_MEAN_STD_CM
    positive_side_fraction: float = phys.GUN_POSITIVE_SIDE_FRACTION

    def __post_init__(self) -> None:
        unknown = [pdg for pdg, _ in self.species_fractions if pdg not in SPECIES]
        if unknown:
            raise CalosimError(f"particle gun: unknown PDG id(s) {unknown}; "
                               f"known: {sorted(SPECIES)}")
        fractions = [f for _, f in self.species_fractions]
        if not fractions or min(fractions) < 0 or sum(fractions) <= 0:
            raise CalosimError("particle gun: species fractions must be >= 0 with a positive sum")
        if not 0 < self.energy_min_gev < self.energy_max_gev:
            raise CalosimError("particle gun: need 0 < energy_min_gev < energy_max_gev")
        if not (0 <= self.leading_fraction <= 1 and 0 <= self.positive_side_fraction <= 1):
            raise CalosimError("particle gun: leading_fraction and positive_side_fraction "
                               "must lie in [0, 1]")
        if min(self.soft_median_gev, self.leading_median_gev) <= 0 or min(
            self.soft_log_sigma, self.leading_log_sigma) < 0:
            raise CalosimError("particle gun: energy medians must be > 0 and log sigmas >= 0")


@dataclass(frozen=True, eq=False)
class GunSample:
    """Sampled particles: (n, 9) float32 in PARTICLE_COLUMNS order and (n,) int64 PDG ids."""

    particles: np.ndarray
    pdg: np.ndarray

    def __len__(self) -> int:
        return len(self.particles)

    def with_pdg(self) -> np.ndarray:
        """(n, 10) float32 table, the PDG id as 10th column (as some real-data copies)."""
        return np.column_stack([self.particles, self.pdg.astype(np.float32)])


class ParticleGun:
    """Samples particles with the species mix, energies, momenta and vertices of the
    real ZN dataset (both sides, sign of Pz)."""

    def __init__(self, config: GunConfig | None = None) -> None:
        self.config = config if config is not None else GunConfig()
        pdgs, fractions = zip(*self.config.species_fractions, strict=True)
        self._pdg = np.array(pdgs, dtype=np.int64)
        self._probability = np.array(fractions) / sum(fractions)
        self._mass_gev = np.array([SPECIES[p].mass_mev for p in pdgs]) / 1000.0
        self._charge = np.array([SPECIES[p].charge for p in pdgs])

    def describe(self) -> dict[str, Any]:
        """The gun's parameters, for file attributes."""
        return {"gun": "calosim", **asdict(self.config)}

    def sample(self, n: int, seed: int, *, first_index: int = 0) -> GunSample:
        """Sample ``n`` particles; ``first_index`` as in DetectorSimulator.simulate."""
        if n < 0:
            raise CalosimError(f"particle gun: number of particles must be >= 0, got {n}")
        generators = block_generators(_gun_seed(seed), first_index, n)
        blocks = [self._sample_block(rng, min(RANDOM_BLOCK, n - k * RANDOM_BLOCK))
                  for k, rng in enumerate(generators)]
        if not blocks:
            return GunSample(np.zeros((0, N_ATTRIBUTES), np.float32), np.zeros(0, np.int64))
        return GunSample(np.concatenate([b.particles for b in blocks]),
                         np.concatenate([b.pdg for b in blocks]))

    def _sample_block(self, rng: np.random.Generator, n: int) -> GunSample:
        cfg = self.config
        kind = rng.choice(self._pdg.size, size=n, p=self._probability)
        mass = self._mass_gev[kind]
        px = rng.normal(*cfg.px_mean_std_gev, n)
        py = rng.normal(*cfg.py_mean_std_gev, n)
        vx = rng.normal(*cfg.vx_mean_std_cm, n)
        vy = rng.normal(*cfg.vy_mean_std_cm, n)
        vz = rng.normal(*cfg.vz_mean_std_cm, n)
        side = np.where(rng.random(n) < cfg.positive_side_fraction, 1.0, -1.0)
        # the particle must carry its mass and transverse momentum
        transverse_mass = np.sqrt(mass**2 + px**2 + py**2)
        energy = self._energies(rng, np.maximum(cfg.energy_min_gev, transverse_mass * (1 + 1e-6)))
        pz = side * np.sqrt(energy**2 - transverse_mass**2)
        particles = np.column_stack([energy, vx, vy, vz, px, py, pz, mass * 1000.0,
                                     self._charge[kind]])
        return GunSample(particles.astype(np.float32), self._pdg[kind])

    def _energies(self, rng: np.random.Generator, lowest: np.ndarray) -> np.ndarray:
        """Soft + leading log-normal mixture, redrawn until within [lowest, energy_max]."""
        cfg = self.config
        leading = rng.random(lowest.size) < cfg.leading_fraction
        log_median = np.log(np.where(leading, cfg.leading_median_gev, cfg.soft_median_gev))
        log_sigma = np.where(leading, cfg.leading_log_sigma, cfg.soft_log_sigma)
        energy = np.exp(log_median + log_sigma * rng.standard_normal(lowest.size))
        for _ in range(_MAX_ENERGY_REDRAWS):
            bad = np.flatnonzero((energy < lowest) | (energy > cfg.energy_max_gev))
            if bad.size == 0:
                return energy
            energy[bad] = np.exp(log_median[bad] + log_sigma[bad] * rng.standard_normal(bad.size))
        raise CalosimError("particle gun: the energy spectrum almost never falls within "
                           f"[{cfg.energy_min_gev}, {cfg.energy_max_gev}] GeV; check the config")


def aimed_particles(pdg: int, energy_gev: float, n: int, x_cm: float = 0.0,
                    y_cm: float = 0.0, side: int = 1) -> np.ndarray:
    """``n`` identical particles from the origin aimed at (x_cm, y_cm) of the ZN face plane
    (straight line, the dipole bend not included): an (n, 9) float32 table, for
    calibration and tests."""
    if pdg not in SPECIES:
        raise CalosimError(f"aimed_particles: unknown PDG id {pdg}")
    if side not in (1, -1):
        raise CalosimError(f"aimed_particles: side must be +1 or -1, got {side}")
    species = SPECIES[pdg]
    mass = species.mass_mev / 1000.0
    if energy_gev <= mass:
        raise CalosimError(f"aimed_particles: energy {energy_gev} GeV is below the "
                           f"{species.name} mass")
    momentum = math.sqrt(energy_gev**2 - mass**2)
    direction = np.array([x_cm, y_cm, phys.ZN_FACE_DISTANCE_CM])
    px, py, pz = momentum * direction / np.linalg.norm(direction)
    row = [energy_gev, 0.0, 0.0, 0.0, px, py, side * pz, species.mass_mev, species.charge]
    return np.tile(np.array(row, dtype=np.float32), (n, 1))


def _gun_seed(seed: int) -> int:
    return int(np.random.SeedSequence(int(seed), spawn_key=(_GUN_STREAM_KEY,))
               .generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class SimulatedChunk:
    """Kept gun particles with their responses; ``n_sampled``: gun particles drawn so far."""

    particles: np.ndarray
    pdg: np.ndarray
    responses: np.ndarray
    n_sampled: int


def iter_simulated_chunks(
    n: int,
    seed: int,
    simulator: DetectorSimulator | None = None,
    min_photons: float = 0,
    chunk_size: int = 16 * RANDOM_BLOCK,
    gun: ParticleGun | None = None,
) -> Iterator[SimulatedChunk]:
    """Sample particles with ``gun`` and simulate them, a chunk at a time (flat memory).

    With ``min_photons`` > 0 only responses with at least that many photons are kept (the
    real dataset keeps >= 10) and sampling goes on until ``n`` are collected. What is
    kept depends on ``seed`` (and ``n``), not on ``chunk_size`` (a multiple of
    RANDOM_BLOCK). The simulator (default: the Monte Carlo) sees ``seed`` itself, so
    ``simulator.simulate(particles, seed)`` reproduces the responses when min_photons = 0.
    """
    if n < 0 or not 0 <= min_photons < math.inf:
        raise CalosimError("simulate_dataset: need n >= 0 and a finite min_photons >= 0, "
                           f"got {n} and {min_photons}")
    if chunk_size <= 0 or chunk_size % RANDOM_BLOCK:
        raise CalosimError(f"simulate_dataset: chunk_size must be a positive multiple of "
                           f"{RANDOM_BLOCK}, got {chunk_size}")
    simulator = simulator if simulator is not None else MonteCarloSimulator()
    gun = gun if gun is not None else ParticleGun()
    # an acceptance below 1/1000 means min_photons is out of reach for this gun
    give_up_after = 1000 * n + 10 * chunk_size
    filled, first = 0, 0
    while filled < n:
        if first >= give_up_after:
            raise CalosimError(f"simulate_dataset: only {filled} of {n} responses reached "
                               f"{min_photons} photons after {first} particles")
        size = chunk_size if min_photons > 0 else min(chunk_size, n - filled)
        batch = gun.sample(size, seed, first_index=first)
        images = simulator.simulate(batch.particles, seed, first_index=first)
        keep = np.flatnonzero(images.sum(axis=(1, 2)) >= min_photons)[: n - filled]
        filled += keep.size
        first += size
        yield SimulatedChunk(batch.particles[keep], batch.pdg[keep], images[keep], first)


def simulate_dataset(
    n: int,
    seed: int,
    simulator: DetectorSimulator | None = None,
    min_photons: float = 0,
    chunk_size: int = 16 * RANDOM_BLOCK,
    gun: ParticleGun | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All of `iter_simulated_chunks` in memory: (particles, pdg, responses)."""
    chunks = list(iter_simulated_chunks(n, seed, simulator, min_photons, chunk_size, gun))
    if not chunks:
        return (np.empty((0, N_ATTRIBUTES), np.float32), np.empty(0, np.int64),
                np.empty((0, IMAGE_SIZE, IMAGE_SIZE), np.float32))
    return (np.concatenate([c.particles for c in chunks]), np.concatenate([c.pdg for c in chunks]),
            np.concatenate([c.responses for c in chunks]))
