"""What O2 records from an export, beside what `calosim generate` makes of the same model.

    python validation/o2_export/measure.py MODEL.pt --out DIR [--n 5000] [--seeds 8]

Exports MODEL.pt (classifier "sample" and "threshold") into DIR, then on N gun particles:
- channel means (O2's hit-path convention, parity even) of the O2 path, batch 1 as O2
  calls it, and of calosim's generation, pooled over SEEDS seeds each, with their
  standard errors;
- the rounding bias alone: the same noise through O2's graph and through the model,
  photons after O2's truncation against the model's unrounded counts, kept particles;
- per-channel W1 between an O2 run and a calosim run, over the W1 between two O2 runs
  (means over all pairs of runs);
- the empty fraction of each path and of the Monte Carlo;
- the batch-1 rate in onnxruntime with one thread, the batched rate, calosim bench.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from calosim.metrics import channels
from calosim.production.bench import benchmark, benchmark_o2
from calosim.production.o2 import O2Runtime, export_o2, o2_attributes
from calosim.production.o2.export import hit_photons
from calosim.simulators.gun import ParticleGun
from calosim.simulators.loading import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--particle-seed", type=int, default=77)
    args = parser.parse_args()
    torch.set_num_threads(1)

    simulator = load(args.model)
    exports = {}
    for decision in ("sample", "threshold"):
        started = time.perf_counter()
        result = export_o2(simulator, args.out / decision, decision=decision)
        exports[decision] = {"seconds": time.perf_counter() - started,
                             "max_abs_difference": result.max_abs_difference}
    particles = ParticleGun().sample(args.n, seed=args.particle_seed).particles
    runtime = O2Runtime(args.out / "sample")
    seeds = range(100, 100 + args.seeds)
    o2_runs = [channels(runtime.simulate(particles, seed), parity="even") for seed in seeds]
    calosim_runs = [channels(simulator.simulate(particles, seed=seed), parity="even")
                    for seed in seeds]
    threshold = O2Runtime(args.out / "threshold")
    threshold_run = channels(threshold.simulate(particles, 1), parity="even")

    o2_all, calosim_all = np.concatenate(o2_runs), np.concatenate(calosim_runs)
    error = np.sqrt((o2_all.var(0) + calosim_all.var(0)) / len(o2_all))
    calosim_mean = calosim_all.mean(0)
    w1_cross = mean_w1(itertools.product(o2_runs, calosim_runs))
    w1_o2 = mean_w1(itertools.combinations(o2_runs, 2))
    w1_calosim = mean_w1(itertools.combinations(calosim_runs, 2))
    report = {
        "model": args.model, "n": args.n, "seeds": args.seeds, "exports": exports,
        "channel_means_o2": o2_all.mean(0).tolist(),
        "channel_means_calosim": calosim_mean.tolist(),
        "channel_mean_ratio_o2_over_calosim": (o2_all.mean(0) / calosim_mean).tolist(),
        "channel_mean_ratio_standard_error": (error / calosim_mean).tolist(),
        "rounding_bias": rounding_bias(simulator, runtime, particles[:1000]),
        "w1_o2_vs_calosim": w1_cross.tolist(),
        "w1_o2_vs_o2": w1_o2.tolist(),
        "w1_calosim_vs_calosim": w1_calosim.tolist(),
        "w1_ratio": (w1_cross / w1_o2).tolist(),
        "empty_fraction_o2_sample": float(np.mean(o2_all.sum(1) == 0)),
        "empty_fraction_o2_threshold": float(np.mean(threshold_run.sum(1) == 0)),
        "empty_fraction_calosim": float(np.mean(calosim_all.sum(1) == 0)),
        "empty_fraction_monte_carlo": float(np.mean(
            load("mc").simulate(particles, seed=1).sum(axis=(1, 2)) == 0)),
        "bench_o2": benchmark_o2(args.out / "sample", args.n),
        "bench_calosim_1_thread": benchmark(simulator, args.n, batch_size=8192),
    }
    print(json.dumps(report, indent=2))


def mean_w1(pairs) -> np.ndarray:
    """Per-channel W1 averaged over pairs of runs."""
    return np.mean([[wasserstein_distance(a[:, c], b[:, c]) for c in range(5)]
                    for a, b in pairs], axis=0)


def rounding_bias(simulator, runtime: O2Runtime, particles: np.ndarray) -> dict | None:
    """Same noise into O2's generator and the model: O2's truncated photons per channel
    over the model's unrounded counts (relative bias, and its standard error). None for
    a model part of whose noise the graph draws itself."""
    model = simulator.model.eval()
    response_dim = model.response_noise_shape[0]
    if response_dim > 10:
        return None
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((len(particles), 10), dtype=np.float32)
    with torch.inference_mode():
        conditions = simulator.standardiser.transform(particles).astype(np.float32)
        counts = model.kept_counts(torch.from_numpy(noise[:, :response_dim]),
                                   torch.from_numpy(conditions)).numpy()
    inputs = [i.name for i in runtime.generator.get_inputs()]
    feeds = dict(zip(inputs, (noise, runtime.scales.transform(o2_attributes(particles))),
                     strict=True))
    photons = hit_photons(runtime.generator.run(None, feeds)[0]).reshape(counts.shape)
    o2, expected = channels(photons, parity="even"), channels(counts, parity="even")
    difference = o2 - expected
    return {"relative_bias": (difference.mean(0) / expected.mean(0)).tolist(),
            "standard_error": (difference.std(0) / np.sqrt(len(o2)) / expected.mean(0)).tolist()}


if __name__ == "__main__":
    main()
