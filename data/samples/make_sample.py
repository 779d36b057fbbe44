"""Make data/samples/zdc_sample.h5: a tiny canonical file with synthetic, plausible rows.

Not a detector simulation: energies, species and photon yields follow the public
figures in the project's facts file (species mix, about 1 photon per GeV for photons and
0.67 for hadrons with 30 % spread, about a fifth of particles missing the calorimeter),
and each response is a Gaussian spot of photons. It exists so that examples, docs and
tests have a real file to open. Run from the repository root:

    PYTHONPATH=. .venv/bin/python data/samples/make_sample.py
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

from calosim.data import ZDCDataset, write_dataset

N_PARTICLES = 200
SEED = 20240
OUTPUT = Path(__file__).with_name("zdc_sample.h5")
# PDG id: (share, mass in MeV, charge, photons per GeV, spot width in fibres)
SPECIES = {
    22: (0.61, 0.0, 0, 1.0, 1.5),
    2112: (0.23, 939.565, 0, 0.67, 3.0),
    2212: (0.05, 938.272, 1, 0.67, 3.0),
    3122: (0.03, 1115.683, 0, 0.67, 3.0),
    211: (0.04, 139.570, 1, 0.67, 3.0),
    -211: (0.04, 139.570, -1, 0.67, 3.0),
}
MISS_FRACTION = 0.22  # particles that miss the calorimeter face give no light


def synthetic_sample(n: int, seed: int) -> ZDCDataset:
    rng = np.random.default_rng(seed)
    codes = np.array(list(SPECIES))
    table = np.array(list(SPECIES.values()))
    pdg = rng.choice(codes, size=n, p=table[:, 0] / table[:, 0].sum())
    rows = table[[list(SPECIES).index(code) for code in pdg]]
    _, mass, charge, yield_per_gev, width = rows.T
    momentum = np.exp(rng.uniform(np.log(1.0), np.log(7000.0), n))
    px, py = rng.normal(0, 0.2, n), rng.normal(0, 0.2, n)
    pz = np.sqrt(np.maximum(momentum**2 - px**2 - py**2, 0)) * rng.choice([-1.0, 1.0], n)
    energy = np.sqrt(px**2 + py**2 + pz**2 + (mass / 1e3) ** 2)
    vertex = rng.normal(0, [4e-6, 4e-6, 0.02], (n, 3))
    particles = np.column_stack([energy, vertex, px, py, pz, mass, charge])

    responses = np.zeros((n, 44, 44), dtype=np.float32)
    grid = np.arange(44)
    for i in np.flatnonzero(rng.random(n) >= MISS_FRACTION):
        mean_photons = yield_per_gev[i] * energy[i]
        photons = rng.poisson(mean_photons * rng.gamma(1 / 0.09, 0.09))  # 30 % spread
        centre = rng.uniform(8, 36, 2)
        spot = np.exp(-0.5 * ((grid[:, None] - centre[0]) ** 2 + (grid[None, :] - centre[1]) ** 2)
                      / width[i] ** 2)
        responses[i] = rng.multinomial(photons, (spot / spot.sum()).ravel()).reshape(44, 44)
    attrs = {"simulator": "synthetic-sample", "seed": seed,
             "note": "synthetic rows for examples and tests, not a detector simulation"}
    return ZDCDataset(responses, particles, pdg, attrs)


if __name__ == "__main__":
    write_dataset(OUTPUT, synthetic_sample(N_PARTICLES, SEED),
                  attrs={"creator": shlex.join(["python", *sys.argv])})
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")
