"""Throughput and memory of a simulator on particles from the default gun.

Responses are produced chunk by chunk and dropped, as in a streaming production job,
so peak memory reflects the simulator, not the size of the run.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

from calosim.simulators.base import DetectorSimulator


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def benchmark(
    simulator: DetectorSimulator, n: int, *, seed: int = 0, batch_size: int = 8192
) -> dict[str, Any]:
    """Time ``simulator`` on ``n`` gun particles; responses/s and peak memory."""
    from calosim.simulators.gun import ParticleGun

    particles = ParticleGun().sample(n, seed=seed).particles
    rss_before = peak_rss_mib()
    simulator.simulate(particles[: min(n, 1024)], seed)  # warm-up: lazy init, kernels
    photons = 0.0
    start = time.perf_counter()
    for first in range(0, n, batch_size):
        chunk = particles[first : first + batch_size]
        responses = simulator.simulate(chunk, seed, first_index=first)
        photons += float(responses.sum(dtype="float64"))
    seconds = time.perf_counter() - start
    return {
        "simulator": simulator.name,
        "n": n,
        "batch_size": batch_size,
        "seconds": seconds,
        "responses_per_second": n / seconds,
        "ms_per_response": 1e3 * seconds / n,
        "mean_photons": photons / n,
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_before_mib": rss_before,
    }


def benchmark_o2(
    directory: str | os.PathLike[str], n: int, *, seed: int = 0, batch_size: int = 1024
) -> dict[str, Any]:
    """Time an O2 export as O2 calls it (classifier then generator, one particle per call,
    one onnxruntime thread) and, for comparison, ``batch_size`` particles per call."""
    from calosim.production.o2 import O2Runtime
    from calosim.simulators.gun import ParticleGun

    particles = ParticleGun().sample(n, seed=seed).particles
    runtime = O2Runtime(directory, threads=1)
    runtime.simulate(particles[: min(n, 100)], seed)  # warm-up
    start = time.perf_counter()
    responses = runtime.simulate(particles, seed)
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    runtime.simulate_batched(particles, seed, batch_size)
    batched = time.perf_counter() - start
    return {
        "export": str(directory),
        "n": n,
        "batch1_responses_per_second": n / one_by_one,
        "batch1_ms_per_particle": 1e3 * one_by_one / n,
        "batch_size": batch_size,
        "batched_responses_per_second": n / batched,
        "simulated_fraction": float((responses.sum(axis=(1, 2)) > 0).mean()),
        "mean_photons": float(responses.sum(dtype="float64")) / n,
        "peak_rss_mib": peak_rss_mib(),
    }
