"""Where an autoencoder simulator loses fidelity: its decoder or its latent generator.

On a run's held-out test particles, compares the channel W1 and MAE of
  - reconstructions p(q(x)) of the real responses (the decoder's limit), and
  - generated responses (latent generator + decoder, as `calosim generate` makes them),
  - a second Monte Carlo of the same particles (the noise floor),
then prints the ratio generated / real of the mean channel sums per energy band, which
shows whether the error is a conditional-mean (calibration) error or a spread error, and
how the light is spread within the responses (centroids, brightest fibre, lit fibres),
which the channel metrics do not see.

    .venv/bin/python validation/zdc_baselines/diagnose_autoencoder.py RUN_DIR DATA.h5 [--n N]

RUN_DIR is a training run directory (model.pt and split.npz); DATA is its training file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from campaign import reconstruct_counts  # noqa: E402

from calosim.data.dataset import read_dataset  # noqa: E402
from calosim.metrics import channel_mae, channel_wasserstein, channels  # noqa: E402
from calosim.metrics.observables import centroids  # noqa: E402
from calosim.simulators.montecarlo import MonteCarloSimulator  # noqa: E402
from calosim.training.checkpoint import load_simulator  # noqa: E402

ENERGY_BANDS_GEV = (0.0, 1000.0, 2000.0, 3000.0, np.inf)


def light_spread(counts: np.ndarray) -> str:
    """Spread of the light centroids (cm) and the mean share of the brightest fibre and
    number of lit fibres, over the non-empty responses."""
    flat = np.asarray(counts, dtype=np.float64).reshape(len(counts), -1)
    lit = flat.sum(axis=1) > 0
    centres = centroids(np.asarray(counts)[lit])
    brightest = (flat[lit].max(axis=1) / flat[lit].sum(axis=1)).mean()
    return (f"centroid std {np.array2string(centres.std(axis=0), precision=2)} cm, "
            f"brightest fibre {brightest:.3f} of the light, "
            f"{(flat[lit] > 0).sum(axis=1).mean():.0f} lit fibres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("data")
    parser.add_argument("--n", type=int, default=8000, help="test responses used")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    dataset = read_dataset(args.data)
    test = np.sort(np.load(f"{args.run_dir}/split.npz")["test"])[: args.n]
    real, particles = dataset.responses[test], dataset.particles[test]
    simulator = load_simulator(f"{args.run_dir}/model.pt")
    outputs = {
        "reconstructed": reconstruct_counts(simulator.model.eval(), real, "stochastic", args.seed),
        "generated": simulator.simulate(particles, seed=args.seed),
        "floor (2nd MC)": MonteCarloSimulator().simulate(particles, seed=args.seed),
    }
    for name, counts in outputs.items():
        w1 = channel_wasserstein(real, counts)
        print(f"{name:14s} W1 {w1.mean:6.2f}  per channel "
              f"{np.array2string(np.asarray(w1.per_channel), precision=1)}  "
              f"MAE {channel_mae(real, counts):6.1f}")
    print("light spread within the responses:")
    for name, counts in (("real", real), *outputs.items()):
        print(f"  {name:14s} {light_spread(counts)}")
    energy = dataset.subset(test).column("Energy")
    real_sums = channels(real)
    empty = {name: counts.reshape(len(counts), -1).max(axis=1) <= 0
             for name, counts in (("real", real), ("generated", outputs["generated"]))}
    print("generated / real mean channel sums per energy band; empty fraction real, generated:")
    for low, high in zip(ENERGY_BANDS_GEV[:-1], ENERGY_BANDS_GEV[1:], strict=True):
        band = (energy >= low) & (energy < high)
        ratio = channels(outputs["generated"][band]).mean(0) / real_sums[band].mean(0)
        print(f"  {low:6.0f} - {high:6.0f} GeV ({band.sum():5d}): "
              f"{np.array2string(ratio, precision=3)}; empty "
              f"{empty['real'][band].mean():.3f}, {empty['generated'][band].mean():.3f}")


if __name__ == "__main__":
    main()
