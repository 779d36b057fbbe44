"""Print the calibration table of the embedded ZN Monte Carlo and the statistics of the
default particle gun (compare with the real-dataset figures in zdc-facts.md).

Usage, from the repository root:
    PYTHONPATH=. python benchmarks/mc_calibration.py [--n-gun 100000] [--n-beam 4000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from calosim.simulators.base import RANDOM_BLOCK
from calosim.simulators.gun import PDG_NAMES, ParticleGun, aimed_particles
from calosim.simulators.montecarlo import MonteCarloSimulator

BEAMS = ((2112, "neutron", (50, 100, 300, 1000, 2500)), (22, "photon", (10, 30, 60, 300)))


def calibration_table(simulator: MonteCarloSimulator, n: int, seed: int) -> list[str]:
    """Mean photons/GeV and relative spread of the photon sum for central particles."""
    lines = [f"{'particle':>8} {'E/GeV':>6} {'photons/GeV':>11} {'rel. spread':>11}"]
    for pdg, name, energies in BEAMS:
        for energy in energies:
            sums = simulator.simulate(aimed_particles(pdg, energy, n), seed).sum(axis=(1, 2))
            lines.append(f"{name:>8} {energy:>6} {sums.mean() / energy:>11.3f} "
                         f"{sums.std() / sums.mean():>11.3f}")
    return lines


def gun_statistics(simulator: MonteCarloSimulator, n: int, seed: int,
                   chunk: int = 16 * RANDOM_BLOCK) -> list[str]:
    """Zero-pixel and empty fractions, photon-sum quartiles and speed on the default gun,
    streamed in chunks so memory stays bounded."""
    gun = ParticleGun()
    sums, energies, pdgs = [], [], []
    zero_pixels, max_pixel = 0, 0.0
    start = time.perf_counter()
    for first in range(0, n, chunk):
        sample = gun.sample(min(chunk, n - first), seed, first_index=first)
        responses = simulator.simulate(sample.particles, seed, first_index=first)
        zero_pixels += int((responses == 0).sum())
        max_pixel = max(max_pixel, float(responses.max()))
        sums.append(responses.sum(axis=(1, 2), dtype=np.float64))
        energies.append(sample.particles[:, 0])
        pdgs.append(sample.pdg)
    elapsed = time.perf_counter() - start
    sum_all, energy, pdg = np.concatenate(sums), np.concatenate(energies), np.concatenate(pdgs)
    non_empty = sum_all[sum_all > 0]
    lines = [
        f"responses: {n} in {elapsed:.1f} s = {n / elapsed:.0f} responses/s (gun included)",
        f"zero-pixel fraction: {zero_pixels / (n * 44 * 44):.4f}   (real 0.96)",
        f"empty fraction: {(sum_all == 0).mean():.3f}   (real 0.22)",
        "non-empty photon-sum quartiles: "
        + " / ".join(f"{q:.0f}" for q in np.percentile(non_empty, [25, 50, 75]))
        + f", max {non_empty.max():.0f}   (real 12 / 111 / 510, max 3360)",
        f"max pixel: {max_pixel:.0f}   (real 591)",
        f">= 10 photons: {(sum_all >= 10).mean():.3f}   (real 307k / 512k = 0.60)",
        f"energy median / mean / std: {np.median(energy):.0f} / {energy.mean():.0f} / "
        f"{energy.std():.0f}   (real ~550 / 1367 / 1260)",
    ]
    for code in np.unique(pdg):
        rows = pdg == code
        lines.append(f"  {PDG_NAMES[int(code)]:>8}: {rows.mean():.3f} of particles, empty "
                     f"{(sum_all[rows] == 0).mean():.2f}, "
                     f"mean photon sum {sum_all[rows].mean():.0f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-gun", type=int, default=100_000)
    parser.add_argument("--n-beam", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    simulator = MonteCarloSimulator()
    print("\n".join(calibration_table(simulator, args.n_beam, args.seed)))
    print("\n".join(gun_statistics(simulator, args.n_gun, args.seed)))


if __name__ == "__main__":
    main()
