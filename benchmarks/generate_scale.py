"""Batch production at scale: N responses of a model to disk on a local Dask cluster.

For each worker count (default 1 and 2) the particle file is generated in shards on a
LocalCluster (one process per worker, one thread each, torch threads = cores / workers),
then merged into one HDF5 file. Reported per run: responses/s of the shards and of the
whole job (shards + merge), peak RSS of this process and of the largest worker, the
file size, and the time 10 million responses would take at the measured rate.

Usage, from the repository root:
    PYTHONPATH=. python benchmarks/generate_scale.py [--n 20000] [--workers 1 2]
        [--model model.pt] [--shards-per-worker 4] [--dir DIR] [--json]

Without --model an untrained Sinkhorn AE of the default (paper-size) architecture is
used: the cost of generation depends on the architecture, not on the weights. The
machine's load average is printed with the figures: on a shared machine they are lower
bounds of what it can do.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from calosim.data import ResponseWriter
from calosim.data.transforms import ALICE_DEPLOYED
from calosim.production.distributed import dask_client, dask_producer, local_worker_threads
from calosim.production.shards import merge_shards, prepare_run, run_sharded
from calosim.simulators.base import RANDOM_BLOCK
from calosim.simulators.gun import ParticleGun
from calosim.simulators.loading import load

TEN_MILLION = 10_000_000
MIB = 2**20


class PeakMemory:
    """Samples the RSS of this process and of every descendant (the Dask workers)."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.own_peak = 0
        self.child_peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.own_peak = max(self.own_peak, me.memory_info().rss)
            for child in me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue  # it ended between listing and reading
                self.child_peaks[child.pid] = max(self.child_peaks.get(child.pid, 0), rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def write_particles(path: Path, n: int, seed: int) -> None:
    """``n`` gun particles, sampled and written block by block (flat memory)."""
    gun = ParticleGun()
    step = 64 * RANDOM_BLOCK
    with ResponseWriter(path, {"seed": seed, "particle_source": "gun"}) as writer:
        for first in range(0, n, step):
            sample = gun.sample(min(step, n - first), seed, first_index=first)
            writer.append(sample.particles, None, pdg=sample.pdg)


def untrained_sae(path: Path) -> Path:
    """A Sinkhorn AE of the default architecture with the deployed ALICE standardiser."""
    import torch

    from calosim.models import LearnedSimulator, build_model
    from calosim.training.checkpoint import save_model_file

    torch.manual_seed(0)
    simulator = LearnedSimulator(build_model("e2e_sae"), ALICE_DEPLOYED, model_name="e2e_sae")
    return save_model_file(path, simulator, extra={"note": "untrained, for benchmarks"})


def run_once(model: str, particles: Path, out: Path, n: int, workers: int,
             shards_per_worker: int) -> dict[str, Any]:
    for stale in (out, out.with_name(out.name + ".manifest.json")):
        stale.unlink(missing_ok=True)
    simulator = load(model)
    plan = prepare_run(model, particles, out, simulator=simulator, seed=1,
                       n_shards=workers * shards_per_worker)
    threads = local_worker_threads(workers)
    with PeakMemory() as memory:
        started = time.perf_counter()
        with dask_client(workers=workers) as client:
            cluster_s = time.perf_counter() - started
            producer = dask_producer(client, torch_threads=threads, progress=False)
            begin = time.perf_counter()
            run_sharded(plan, producer=producer, merge=False, progress=False)
            shards_s = time.perf_counter() - begin
        begin = time.perf_counter()
        merge_shards(plan, progress=False)
        merge_s = time.perf_counter() - begin
    job_rate = n / (shards_s + merge_s)
    return {
        "workers": workers,
        "torch_threads_per_worker": threads,
        "n_shards": plan.n_shards,
        "n": n,
        "cluster_start_s": round(cluster_s, 2),
        "shards_s": round(shards_s, 2),
        "merge_s": round(merge_s, 2),
        "shard_responses_per_s": round(n / shards_s, 1),
        "job_responses_per_s": round(job_rate, 1),
        "peak_rss_client_mib": round(memory.own_peak / MIB, 1),
        "peak_rss_largest_worker_mib": round(max(memory.child_peaks.values(), default=0) / MIB,
                                             1),
        "output_mib": round(out.stat().st_size / MIB, 2),
        "extrapolated_10M_hours": round(TEN_MILLION / job_rate / 3600, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="responses to generate")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", default=None, help="model file (default: untrained SAE)")
    parser.add_argument("--shards-per-worker", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="calosim-scale-") as scratch:
        directory = args.dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        model = args.model or str(untrained_sae(directory / "sae.pt"))
        particles = directory / "particles.h5"
        write_particles(particles, args.n, seed=7)
        context = {"model": model if args.model else "untrained default e2e_sae",
                   "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}
        results = [run_once(model, particles, directory / f"out-w{w}.h5", args.n, w,
                            args.shards_per_worker) for w in args.workers]
        context["load_average_1min_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"context": context, "runs": results}, indent=2))
        return
    print(" ".join(f"{key}={value}" for key, value in context.items()))
    for result in results:
        print(" ".join(f"{key}={value}" for key, value in result.items()))


if __name__ == "__main__":
    main()
