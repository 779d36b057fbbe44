"""The embedded stochastic simulation of the ALICE neutron ZDC (ZN), GFlash style.

Per particle: transport to the ZN face (straight for neutrals, horizontal dipole bend
for charged particles), then either a parametrised shower in the ZN (electromagnetic or
hadronic, built from sub-shower clusters), a broad spray from an upstream shower for
near misses, or nothing. Each cluster emits Cherenkov light as a Poisson number of fibre
crossings, each at a position drawn from the cluster's lateral profile and carrying a
geometric number of photons (compound Poisson); photons outside the face are lost.
Everything is vectorised per block of RANDOM_BLOCK particles, so the cost grows with the
number of photons and the memory stays bounded.

Coordinates: the face frame is the global ALICE (x, y) for both ZNs (one convention for
the two mirror-image calorimeters; the side is the sign of Pz). Image row index x is the
horizontal coordinate (the dipole bends along it), column index y the vertical one; the
centre of pixel [x, y] is at ((x - 21.5) * 0.16 cm, (y - 21.5) * 0.16 cm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from calosim.data.schema import IMAGE_SIZE, N_PIXELS, as_particle_array
from calosim.errors import CalosimError
from calosim.simulators import physics as phys
from calosim.simulators.base import RANDOM_BLOCK, DetectorSimulator, ParticleRowError

Rng = np.random.Generator
# Fibre crossings drawn per vectorised batch: bounds memory (~60 bytes each) per block.
PHOTON_BATCH = 1 << 20
# Highest energy simulated, even with allow_out_of_range: time and memory grow with the
# light, about one photon per GeV, so this bounds a particle to ~0.1 s and one batch.
MAX_ENERGY_GEV = 1e6
# offsets of shower-maximum formulas may be negative; every other parameter is >= 0
_SIGNED_PARAMETERS = frozenset({"em_shower_max_offset", "hadronic_shower_max_offset"})
_ENERGY, _VX, _VY, _VZ, _PX, _PY, _PZ, _MASS, _CHARGE = range(9)


@dataclass(frozen=True)
class MonteCarloConfig:
    """Physical parameters of the ZN Monte Carlo; defaults and sources in physics.py."""

    face_distance_cm: float = phys.ZN_FACE_DISTANCE_CM
    half_width_cm: float = phys.ZN_HALF_WIDTH_CM
    depth_cm: float = phys.ZN_DEPTH_CM
    interaction_length_cm: float = phys.ZN_INTERACTION_LENGTH_CM
    radiation_length_cm: float = phys.ZN_RADIATION_LENGTH_CM
    moliere_radius_cm: float = phys.ZN_MOLIERE_RADIUS_CM
    critical_energy_gev: float = phys.ZN_CRITICAL_ENERGY_GEV
    dipole_bending_cm_gev: float = phys.DIPOLE_BENDING_CM_GEV
    em_mass_limit_mev: float = phys.EM_MASS_LIMIT_MEV
    em_light_per_gev: float = phys.EM_LIGHT_PER_GEV
    em_profile_b: float = phys.EM_PROFILE_B
    em_shower_max_offset: float = phys.EM_SHOWER_MAX_OFFSET
    photon_conversion_x0: float = phys.PHOTON_CONVERSION_X0
    em_core_fraction: float = phys.EM_CORE_FRACTION
    em_core_radius_moliere: float = phys.EM_CORE_RADIUS_MOLIERE
    em_tail_radius_moliere: float = phys.EM_TAIL_RADIUS_MOLIERE
    em_extra_clusters_mean: float = phys.EM_EXTRA_CLUSTERS_MEAN
    em_cluster_spread_moliere: float = phys.EM_CLUSTER_SPREAD_MOLIERE
    groom_e0_gev: float = phys.GROOM_E0_GEV
    groom_exponent_m: float = phys.GROOM_EXPONENT_M
    em_fraction_concentration: float = phys.EM_FRACTION_CONCENTRATION
    hadronic_light_per_gev: float = phys.HADRONIC_LIGHT_PER_GEV
    hadronic_shower_max_log: float = phys.HADRONIC_SHOWER_MAX_LOG
    hadronic_shower_max_offset: float = phys.HADRONIC_SHOWER_MAX_OFFSET
    hadronic_attenuation_exponent: float = phys.HADRONIC_ATTENUATION_EXPONENT
    hadronic_tail_fraction: float = phys.HADRONIC_TAIL_FRACTION
    hadronic_em_clusters_per_log_e: float = phys.HADRONIC_EM_CLUSTERS_PER_LOG_E
    hadronic_em_cluster_spread_cm: float = phys.HADRONIC_EM_CLUSTER_SPREAD_CM
    hadronic_halo_radius_cm: float = phys.HADRONIC_HALO_RADIUS_CM
    hadronic_halo_extra_clusters_mean: float = phys.HADRONIC_HALO_EXTRA_CLUSTERS_MEAN
    hadronic_halo_spread_cm: float = phys.HADRONIC_HALO_SPREAD_CM
    cluster_share_shape: float = phys.CLUSTER_SHARE_SHAPE
    spray_probability_at_edge: float = phys.SPRAY_PROBABILITY_AT_EDGE
    spray_decay_cm: float = phys.SPRAY_DECAY_CM
    spray_max_distance_cm: float = phys.SPRAY_MAX_DISTANCE_CM
    spray_light_per_gev: float = phys.SPRAY_LIGHT_PER_GEV
    spray_light_decay_cm: float = phys.SPRAY_LIGHT_DECAY_CM
    spray_radius_cm: float = phys.SPRAY_RADIUS_CM
    spray_extra_clusters_mean: float = phys.SPRAY_EXTRA_CLUSTERS_MEAN
    spray_cluster_spread_cm: float = phys.SPRAY_CLUSTER_SPREAD_CM
    photons_per_fibre_crossing: float = phys.PHOTONS_PER_FIBRE_CROSSING

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            signed = field.name in _SIGNED_PARAMETERS
            if not math.isfinite(value) or (value < 0 and not signed):
                raise CalosimError(f"Monte Carlo parameter {field.name} must be finite"
                                   f"{'' if signed else ' and >= 0'}, got {value}")
        for name in ("em_core_fraction", "spray_probability_at_edge"):
            if getattr(self, name) > 1:
                raise CalosimError(f"Monte Carlo parameter {name} is a fraction: must be <= 1")
        if self.photons_per_fibre_crossing < 1:
            raise CalosimError("Monte Carlo parameter photons_per_fibre_crossing must be >= 1")
        for name in ("half_width_cm", "depth_cm", "interaction_length_cm", "radiation_length_cm",
                     "moliere_radius_cm", "critical_energy_gev", "groom_e0_gev",
                     "em_fraction_concentration", "cluster_share_shape", "spray_decay_cm",
                     "spray_light_decay_cm"):
            if getattr(self, name) <= 0:
                raise CalosimError(f"Monte Carlo parameter {name} must be > 0")

    @property
    def pitch_cm(self) -> float:
        """Fibre pitch: the face width over the 44 fibres."""
        return 2.0 * self.half_width_cm / IMAGE_SIZE


@dataclass
class _Clusters:
    """Light sources of one block: owner particle, centre (cm), lateral radius R (cm) of
    the profile 2 r R^2 / (r^2 + R^2)^2 and expected number of photons."""

    particle: np.ndarray
    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    mean_photons: np.ndarray

    @staticmethod
    def concat(parts: Sequence[_Clusters]) -> _Clusters:
        return _Clusters(*(np.concatenate([getattr(p, f.name) for p in parts])
                           for f in fields(_Clusters)))


@dataclass
class _Track:
    """Per-particle transport result of a block (float64 arrays)."""

    energy: np.ndarray
    x: np.ndarray  # impact point on the face plane (cm)
    y: np.ndarray
    slope_x: np.ndarray  # dx/dz, dy/dz of the shower axis
    slope_y: np.ndarray
    hits: np.ndarray  # bool: enters the front face
    miss_distance: np.ndarray  # distance of the impact point to the face (0 if hit, inf if lost)
    is_em: np.ndarray  # bool: photon or electron


class MonteCarloSimulator(DetectorSimulator):
    """Stochastic parametrised simulation of the ZN; the reference for learned models."""

    name = "mc"

    def __init__(self, config: MonteCarloConfig | None = None) -> None:
        self.config = config if config is not None else MonteCarloConfig()

    def describe(self) -> dict[str, Any]:
        """Simulator name and every physical parameter."""
        return {"simulator": self.name, **asdict(self.config)}

    def impact_point(self, particles: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Impact point on the ZN face plane: (x_cm, y_cm, hits_face), float64/bool (N,).

        x is horizontal (image row index, the dipole bend direction), y vertical. Particles
        with Pz = 0 never reach a face: their coordinates are inf.
        """
        track = self._transport(as_particle_array(particles).astype(np.float64))
        return track.x, track.y, track.hits

    @property
    def max_energy_gev(self) -> float:
        """Highest particle energy simulated: MAX_ENERGY_GEV, or lower where the light per
        GeV is so high that one cluster's fibre crossings would exceed PHOTON_BATCH."""
        cfg = self.config
        light = max(cfg.em_light_per_gev, cfg.hadronic_light_per_gev, cfg.spray_light_per_gev)
        per_batch = PHOTON_BATCH * cfg.photons_per_fibre_crossing / light if light else math.inf
        return min(MAX_ENERGY_GEV, per_batch)

    def _simulate(self, particles: np.ndarray, generators: Sequence[Rng]) -> np.ndarray:
        energy = particles[:, _ENERGY]
        bad = (energy < 0) | (energy > self.max_energy_gev)
        if bad.any():
            row = int(bad.argmax())
            raise ParticleRowError(row, f"Energy {energy[row]:.6g} GeV is outside the "
                                        f"Monte Carlo's [0, {self.max_energy_gev:g}] GeV")
        out = np.empty((len(particles), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        for k, rng in enumerate(generators):
            rows = slice(k * RANDOM_BLOCK, (k + 1) * RANDOM_BLOCK)
            out[rows] = self._simulate_block(particles[rows].astype(np.float64), rng)
        return out

    # --- one block ----------------------------------------------------------------------
    def _simulate_block(self, particles: np.ndarray, rng: Rng) -> np.ndarray:
        """All draws of a block come from ``rng`` in a fixed order: reproducible."""
        track = self._transport(particles)
        em = np.flatnonzero(track.hits & track.is_em)
        hadrons = np.flatnonzero(track.hits & ~track.is_em)
        missed = np.flatnonzero(np.isfinite(track.miss_distance) & ~track.hits)
        clusters = _Clusters.concat([
            self._em_showers(rng, track, em),
            self._hadron_showers(rng, track, hadrons),
            self._upstream_sprays(rng, track, missed),
        ])
        counts = self._render(rng, len(particles), clusters)
        return counts.reshape(len(particles), IMAGE_SIZE, IMAGE_SIZE).astype(np.float32)

    def _transport(self, particles: np.ndarray) -> _Track:
        cfg = self.config
        px, py, pz = particles[:, _PX], particles[:, _PY], particles[:, _PZ]
        side = np.sign(pz)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope_x, slope_y = px / np.abs(pz), py / np.abs(pz)
            momentum = np.sqrt(px * px + py * py + pz * pz)
            bend = cfg.dipole_bending_cm_gev * particles[:, _CHARGE] / momentum
        bend = np.where(particles[:, _CHARGE] == 0, 0.0, bend)
        distance = cfg.face_distance_cm - side * particles[:, _VZ]
        x = particles[:, _VX] + slope_x * distance + bend
        y = particles[:, _VY] + slope_y * distance
        reaches = (side != 0) & np.isfinite(x) & np.isfinite(y)
        x = np.where(reaches, x, np.inf)
        y = np.where(reaches, y, np.inf)
        outside_x = np.maximum(np.abs(x) - cfg.half_width_cm, 0.0)
        outside_y = np.maximum(np.abs(y) - cfg.half_width_cm, 0.0)
        with np.errstate(invalid="ignore"):
            miss_distance = np.where(reaches, np.hypot(outside_x, outside_y), np.inf)
        return _Track(
            energy=particles[:, _ENERGY], x=x, y=y,
            slope_x=np.where(reaches, slope_x, 0.0), slope_y=np.where(reaches, slope_y, 0.0),
            hits=reaches & (miss_distance == 0.0), miss_distance=miss_distance,
            is_em=np.abs(particles[:, _MASS]) < cfg.em_mass_limit_mev,
        )

    def _em_showers(self, rng: Rng, track: _Track, idx: np.ndarray) -> _Clusters:
        """Photon/electron showers: a few EM clusters near the axis, all in the ZN."""
        cfg = self.config
        energy = track.energy[idx]
        n_clusters = 1 + rng.poisson(cfg.em_extra_clusters_mean, idx.size)
        owner, share = self._cluster_shares(rng, n_clusters)
        depth = self._em_depth(rng, energy[owner])
        return self._em_clusters(
            rng, track, idx[owner], depth, cfg.em_light_per_gev * energy[owner] * share,
            spread_cm=cfg.em_cluster_spread_moliere * cfg.moliere_radius_cm,
        )

    def _em_depth(self, rng: Rng, energy: np.ndarray) -> np.ndarray:
        """Depth (cm) of EM (sub-)showers: conversion point plus the PDG Gamma profile."""
        cfg = self.config
        shower_max = np.log(np.maximum(energy, cfg.critical_energy_gev) / cfg.critical_energy_gev)
        shape = 1.0 + cfg.em_profile_b * np.maximum(shower_max + cfg.em_shower_max_offset, 0.0)
        depth_x0 = (rng.exponential(cfg.photon_conversion_x0, energy.size)
                    + rng.gamma(shape, 1.0 / cfg.em_profile_b))
        return depth_x0 * cfg.radiation_length_cm

    def _em_clusters(self, rng: Rng, track: _Track, owner: np.ndarray,
                     depth: np.ndarray, photons: np.ndarray, spread_cm: float) -> _Clusters:
        """EM clusters on the inclined axis, each with the GFlash core + tail profile."""
        cfg = self.config
        x, y = self._on_axis(rng, track, owner, depth, spread_cm)
        core = cfg.em_core_radius_moliere * cfg.moliere_radius_cm
        tail = cfg.em_tail_radius_moliere * cfg.moliere_radius_cm
        return _Clusters(
            particle=np.concatenate([owner, owner]), x=np.concatenate([x, x]),
            y=np.concatenate([y, y]),
            radius=np.repeat([core, tail], owner.size),
            mean_photons=np.concatenate([photons * cfg.em_core_fraction,
                                         photons * (1.0 - cfg.em_core_fraction)]),
        )

    def _hadron_showers(self, rng: Rng, track: _Track, idx: np.ndarray) -> _Clusters:
        """Hadron showers: exponential start, fluctuating EM fraction carried by pi0
        clusters, a broad non-EM halo; clusters behind the absorber are lost."""
        cfg = self.config
        energy = track.energy[idx]
        start = rng.exponential(cfg.interaction_length_cm, idx.size)
        scaled = np.maximum(energy, cfg.groom_e0_gev) / cfg.groom_e0_gev
        mean_em_fraction = np.clip(1.0 - scaled ** (cfg.groom_exponent_m - 1.0), 0.02, 0.98)
        kappa = cfg.em_fraction_concentration
        em_fraction = rng.beta(mean_em_fraction * kappa, (1.0 - mean_em_fraction) * kappa)

        log_e = np.log(np.maximum(energy, 1.0))
        n_em = 1 + rng.poisson(cfg.hadronic_em_clusters_per_log_e * log_e)
        em_owner, em_share = self._cluster_shares(rng, n_em)
        em_depth = start[em_owner] + self._hadronic_depth(rng, log_e[em_owner])
        em_photons = (cfg.em_light_per_gev * energy[em_owner] * em_fraction[em_owner] * em_share
                      * (em_depth < cfg.depth_cm))
        pi0 = self._em_clusters(rng, track, idx[em_owner], em_depth, em_photons,
                                spread_cm=cfg.hadronic_em_cluster_spread_cm)

        n_halo = 1 + rng.poisson(cfg.hadronic_halo_extra_clusters_mean, idx.size)
        halo_owner, halo_share = self._cluster_shares(rng, n_halo)
        halo_depth = start[halo_owner] + self._hadronic_depth(rng, log_e[halo_owner])
        halo_photons = (cfg.hadronic_light_per_gev * energy[halo_owner]
                        * (1.0 - em_fraction[halo_owner]) * halo_share
                        * (halo_depth < cfg.depth_cm))
        x, y = self._on_axis(rng, track, idx[halo_owner], halo_depth, cfg.hadronic_halo_spread_cm)
        halo = _Clusters(idx[halo_owner], x, y,
                         np.full(halo_owner.size, cfg.hadronic_halo_radius_cm), halo_photons)
        return _Clusters.concat([pi0, halo])

    def _hadronic_depth(self, rng: Rng, log_e: np.ndarray) -> np.ndarray:
        """Depth (cm) beyond the first interaction, Gamma profile with the PDG shower
        maximum and a tail scale tied to the PDG attenuation length."""
        cfg = self.config
        shower_max = cfg.hadronic_shower_max_log * log_e + cfg.hadronic_shower_max_offset
        tail = cfg.hadronic_tail_fraction * np.exp(cfg.hadronic_attenuation_exponent * log_e)
        return rng.gamma(1.0 + shower_max / tail, tail) * cfg.interaction_length_cm

    def _upstream_sprays(self, rng: Rng, track: _Track, idx: np.ndarray) -> _Clusters:
        """Near misses shower in upstream material with a probability falling with the
        distance d to the face; secondaries enter the face from the nearest edge, a broad
        signal of mean spray_light_per_gev * E * exp(-d / spray_light_decay_cm) photons."""
        cfg = self.config
        distance = track.miss_distance[idx]
        probability = cfg.spray_probability_at_edge * np.exp(-distance / cfg.spray_decay_cm)
        probability = np.where(distance < cfg.spray_max_distance_cm, probability, 0.0)
        sprayed = rng.random(idx.size) < probability
        idx, distance = idx[sprayed], distance[sprayed]
        n_clusters = 1 + rng.poisson(cfg.spray_extra_clusters_mean, idx.size)
        owner, share = self._cluster_shares(rng, n_clusters)
        edge_x = np.clip(track.x[idx[owner]], -cfg.half_width_cm, cfg.half_width_cm)
        edge_y = np.clip(track.y[idx[owner]], -cfg.half_width_cm, cfg.half_width_cm)
        dx, dy = rng.normal(0.0, cfg.spray_cluster_spread_cm, (2, owner.size))
        photons = (cfg.spray_light_per_gev * track.energy[idx[owner]] * share
                   * np.exp(-distance[owner] / cfg.spray_light_decay_cm))
        return _Clusters(idx[owner], edge_x + dx, edge_y + dy,
                         np.full(owner.size, cfg.spray_radius_cm), photons)

    def _on_axis(self, rng: Rng, track: _Track, owner: np.ndarray,
                 depth: np.ndarray, spread_cm: float) -> tuple[np.ndarray, np.ndarray]:
        """Cluster centres: the shower axis at the cluster depth plus a Gaussian scatter
        of ``spread_cm`` per axis."""
        dx, dy = rng.normal(0.0, spread_cm, (2, owner.size))
        return (track.x[owner] + track.slope_x[owner] * depth + dx,
                track.y[owner] + track.slope_y[owner] * depth + dy)

    def _cluster_shares(self, rng: Rng, n_clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For particle i, n_clusters[i] clusters with Dirichlet energy shares.

        Returns (owner, share): for each cluster the position of its particle in
        ``n_clusters`` and its share of that particle's energy (shares sum to 1).
        """
        if n_clusters.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        present = np.arange(n_clusters.max()) < n_clusters[:, None]
        weights = rng.gamma(self.config.cluster_share_shape, size=present.shape) * present
        total = weights.sum(axis=1, keepdims=True)
        # a particle whose gamma draws all underflow to 0 puts everything in cluster 0
        weights[:, 0] += total[:, 0] == 0
        shares = weights / weights.sum(axis=1, keepdims=True)
        owner, column = np.nonzero(present)
        return owner, shares[owner, column]

    def _render(self, rng: Rng, n_particles: int, clusters: _Clusters) -> np.ndarray:
        """Compound-Poisson light: a Poisson number of fibre crossings per cluster, each at
        a position drawn from the cluster profile and giving a geometric number of
        photons to its fibre. Returns flat int64 counts, photons off the face lost."""
        cfg = self.config
        counts = rng.poisson(clusters.mean_photons / cfg.photons_per_fibre_crossing)
        image = np.zeros(n_particles * N_PIXELS, dtype=np.int64)
        if counts.size == 0:
            return image
        # work in fibre units
        centre_x = ((clusters.x + cfg.half_width_cm) / cfg.pitch_cm).astype(np.float32)
        centre_y = ((clusters.y + cfg.half_width_cm) / cfg.pitch_cm).astype(np.float32)
        radius = (clusters.radius / cfg.pitch_cm).astype(np.float32)
        base = clusters.particle * N_PIXELS
        for first, last in _photon_batches(counts, PHOTON_BATCH):
            source = np.repeat(np.arange(first, last), counts[first:last])
            dx, dy = _lateral_offsets(rng, radius[source])
            photons = rng.geometric(1.0 / cfg.photons_per_fibre_crossing, source.size)
            fx, fy = centre_x[source] + dx, centre_y[source] + dy
            inside = (fx >= 0) & (fx < IMAGE_SIZE) & (fy >= 0) & (fy < IMAGE_SIZE)
            pixel = (base[source[inside]] + fx[inside].astype(np.int64) * IMAGE_SIZE
                     + fy[inside].astype(np.int64))
            image += np.bincount(pixel, weights=photons[inside], minlength=image.size).astype(
                np.int64)
        return image


def _lateral_offsets(rng: Rng, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One offset per entry of ``radius`` (float32, same units) from the 2-D profile
    2 r R^2 / (r^2 + R^2)^2: a bivariate Student t with 2 degrees of freedom and scale
    R / sqrt(2), i.e. a normal pair divided by the square root of a unit exponential."""
    normal = rng.standard_normal((2, radius.size), dtype=np.float32)
    exponential = rng.standard_exponential(radius.size, dtype=np.float32)
    width = radius * np.float32(1 / math.sqrt(2.0)) / np.sqrt(
        np.maximum(exponential, np.finfo(np.float32).tiny))
    return normal[0] * width, normal[1] * width


def _photon_batches(counts: np.ndarray, batch: int) -> list[tuple[int, int]]:
    """Consecutive cluster ranges holding about ``batch`` photons each (at least one
    cluster per range)."""
    cumulative = np.cumsum(counts)
    cuts = np.searchsorted(cumulative, np.arange(batch, cumulative[-1], batch), side="left") + 1
    edges = np.unique(np.concatenate([[0], cuts, [counts.size]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
