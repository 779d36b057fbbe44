"""Stream a simulator over many particles into one output file with flat memory.

Particles are read and simulated chunk by chunk; every chunk starts at a multiple of
RANDOM_BLOCK, so the output is identical whatever the chunk size (see
calosim.simulators.base). The output file appears only when the run completes.

Several responses per particle (``n_per_particle`` = K): the output repeats each particle
K times consecutively, and copy k of particle i is drawn as if it were particle
i * K + k of a K times longer list (its *global index*). So output row r always holds
the response of global index r, whatever part of the file (shard) a call produces.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from calosim._version import __version__
from calosim.data import ResponseWriter, count_particles, iter_particle_chunks
from calosim.errors import CalosimError
from calosim.metrics.zdc import channels
from calosim.simulators.base import RANDOM_BLOCK, DetectorSimulator

DEFAULT_CHUNK = 8 * RANDOM_BLOCK
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter number
_TRIM_THRESHOLD_BYTES = 64 * 1024


@dataclass(frozen=True)
class StreamSummary:
    out: Path
    n_responses: int
    n_sampled: int
    seconds: float


def run_attrs(
    simulator: DetectorSimulator, seed: int, creator: str | None = None, **extra: Any
) -> dict[str, Any]:
    """File attributes every produced file carries: how to make it again."""
    attrs = {
        "calosim_version": __version__,
        "creator": creator or " ".join(sys.argv),
        "seed": int(seed),
        "simulator": simulator.name,
    }
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


@functools.cache
def return_freed_memory_to_os() -> None:
    """Make glibc give freed heap memory back to the system (once per process).

    Each chunk allocates and frees buffers of tens of MB from torch and numpy in turn;
    with glibc's adaptive thresholds those land on the heap and the freed space is kept,
    so the resident memory of a long run grows with the number of particles. A fixed
    trim threshold (what Dask sets for its workers) keeps it flat. No-op elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        return  # not glibc (musl has no mallopt): nothing to tune


def _aligned(chunk_size: int) -> int:
    return max(RANDOM_BLOCK, (chunk_size // RANDOM_BLOCK) * RANDOM_BLOCK)


def simulate_file(
    simulator: DetectorSimulator,
    particles_path: str | Path,
    out: str | Path,
    *,
    seed: int,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = True,
    creator: str | None = None,
) -> StreamSummary:
    """One response per particle of ``particles_path``, written to ``out`` (HDF5 or ROOT)."""
    return simulate_rows(simulator, particles_path, out, seed=seed, chunk_size=chunk_size,
                         progress=progress, creator=creator)


def simulate_rows(
    simulator: DetectorSimulator,
    particles_path: str | Path,
    out: str | Path,
    *,
    seed: int,
    start: int = 0,
    stop: int | None = None,
    n_per_particle: int = 1,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = True,
    creator: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> StreamSummary:
    """Responses of particles [start, stop) of ``particles_path``, ``n_per_particle`` each.

    ``start`` must be a multiple of RANDOM_BLOCK; ``stop`` None means the end of the file.
    Output row r of the whole file's run is global index r (see the module docstring), so
    files made for adjacent ranges concatenate to the file of the whole range. ``attrs``
    are added to the file attributes. Memory stays flat: particles are read
    ``chunk_size`` at a time and at most ``chunk_size`` responses are held.
    """
    if start % RANDOM_BLOCK or start < 0:
        raise CalosimError(f"start must be a non-negative multiple of {RANDOM_BLOCK}, got {start}")
    if n_per_particle < 1:
        raise CalosimError(f"n_per_particle must be at least 1, got {n_per_particle}")
    return_freed_memory_to_os()
    begin = time.perf_counter()
    stop = count_particles(particles_path) if stop is None else stop
    extra = dict(attrs or {})
    if n_per_particle > 1:
        extra["n_per_particle"] = n_per_particle
    file_attrs = run_attrs(simulator, seed, creator, **extra)
    # errors count rows of what simulate is given: the file's, or its particles repeated
    source = str(particles_path) if n_per_particle == 1 else (
        f"{particles_path} with each particle {n_per_particle} times")
    written = 0
    with ResponseWriter(out, file_attrs) as writer, tqdm(
        total=max(0, stop - start) * n_per_particle, unit="resp",
        disable=None if progress else True, desc=simulator.name,
    ) as bar:
        for first, particles, pdg in _particle_range(particles_path, start, stop, chunk_size):
            for rows, responses in _responses_of(simulator, particles, first, seed,
                                                 n_per_particle, _aligned(chunk_size), source):
                writer.append(particles[rows], responses,
                              pdg=None if pdg is None else pdg[rows],
                              channels=channels(responses))
                written += len(responses)
                bar.update(len(responses))
    return StreamSummary(Path(out), written, written, time.perf_counter() - begin)


def _particle_range(
    path: str | Path, start: int, stop: int, chunk_size: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(index of the first particle, particles, pdg) of rows [start, stop), chunk by chunk."""
    for chunk in iter_particle_chunks(path, _aligned(chunk_size)):
        if chunk.start >= stop:
            break
        lo = max(start, chunk.start) - chunk.start
        hi = min(stop, chunk.start + len(chunk)) - chunk.start
        if hi > lo:
            pdg = None if chunk.pdg is None else chunk.pdg[lo:hi]
            yield chunk.start + lo, chunk.particles[lo:hi], pdg


def _responses_of(
    simulator: DetectorSimulator, particles: np.ndarray, first: int, seed: int,
    n_per_particle: int, batch_rows: int, source: str,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row indices into ``particles``, responses), ``batch_rows`` output rows at a time.

    ``first`` (the index of particles[0] in the file) is a multiple of RANDOM_BLOCK, so
    ``first * n_per_particle + offset`` is too: every batch starts on a random block.
    """
    total = len(particles) * n_per_particle
    for offset in range(0, total, batch_rows):
        rows = np.arange(offset, min(total, offset + batch_rows)) // n_per_particle
        yield rows, simulator.simulate(
            particles[rows], seed, first_index=first * n_per_particle + offset, source=source
        )


def simulate_gun(
    simulator: DetectorSimulator,
    n: int,
    out: str | Path,
    *,
    seed: int,
    min_photons: float = 0.0,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = True,
    creator: str | None = None,
) -> StreamSummary:
    """``n`` responses of particles from the default particle gun, written to ``out``.

    With ``min_photons`` > 0, responses with fewer photons are dropped and sampling goes
    on until ``n`` are kept (as the real ZN dataset keeps responses with >= 10 photons).
    Without it, `simulate_file` on the written particles with the same seed reproduces
    the responses exactly.
    """
    from calosim.simulators.gun import iter_simulated_chunks

    start = time.perf_counter()
    attrs = run_attrs(simulator, seed, creator, min_photons=min_photons, particle_source="gun")
    sampled = 0
    with ResponseWriter(out, attrs) as writer, tqdm(
        total=n, unit="resp", disable=None if progress else True, desc=simulator.name
    ) as bar:
        chunks = iter_simulated_chunks(n, seed, simulator, min_photons, _aligned(chunk_size))
        for chunk in chunks:
            writer.append(chunk.particles, chunk.responses, pdg=chunk.pdg,
                          channels=channels(chunk.responses))
            sampled = chunk.n_sampled
            bar.update(len(chunk.responses))
    return StreamSummary(Path(out), n, sampled, time.perf_counter() - start)
