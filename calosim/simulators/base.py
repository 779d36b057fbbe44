"""The one interface shared by the Monte Carlo and every learned model.

Randomness is drawn per block of RANDOM_BLOCK consecutive particles, each block with
its own generator derived from (seed, block index). So the responses of a particle
depend only on the seed and its position in the full particle list: simulating a
list at once, in chunks, or in shards gives identical responses, as long as each
call states where its particles start (``first_index``, a multiple of RANDOM_BLOCK).

Every simulator gets the same input checks (calosim.data.particle_checks): values
nothing can simulate are always refused, values outside the range of a ZDC simulation
unless ``allow_out_of_range`` is set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from calosim.data.particle_checks import check_ranges
from calosim.data.schema import as_particle_array
from calosim.errors import CalosimError
from calosim.interrupts import raise_if_interrupted

RANDOM_BLOCK = 1024


def fresh_seed() -> int:
    """A new random seed, for runs that were not given one (callers record it)."""
    return int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])


def block_generators(seed: int, first_index: int, n: int) -> list[np.random.Generator]:
    """One generator per RANDOM_BLOCK rows of ``n`` particles starting at ``first_index``."""
    if first_index % RANDOM_BLOCK or first_index < 0:
        raise CalosimError(f"first_index must be a non-negative multiple of {RANDOM_BLOCK}, "
                           f"got {first_index}")
    if seed < 0:
        raise CalosimError(f"seed must be a non-negative integer, got {seed}")
    first_block = first_index // RANDOM_BLOCK
    n_blocks = -(-n // RANDOM_BLOCK)
    return [
        np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(b,))))
        for b in range(first_block, first_block + n_blocks)
    ]


class ParticleRowError(CalosimError):
    """Raised by ``_simulate`` about one particle, ``row`` of the array it was given;
    ``simulate`` re-raises it naming the source and the row in the whole list."""

    def __init__(self, row: int, problem: str) -> None:
        super().__init__(f"particle row {row} (0-based): {problem}")
        self.row, self.problem = row, problem


class DetectorSimulator(ABC):
    """particles (N, 9) -> responses (N, 44, 44) photon counts, float32.

    ``allow_out_of_range``: the default of ``simulate``'s keyword of that name.
    """

    name: str = "simulator"
    allow_out_of_range: bool = False

    def simulate(
        self, particles: Any, seed: int | None = None, *, first_index: int = 0,
        allow_out_of_range: bool | None = None, source: str | None = None,
    ) -> np.ndarray:
        """Simulate one response per particle.

        ``particles``: an (N, 9) array or a table with the 9 named columns (see
        calosim.data.schema). ``seed``: same seed and particles give identical
        responses; None draws a fresh seed. ``first_index``: position of the first
        particle in a longer list being simulated piecewise. ``allow_out_of_range``:
        simulate particles outside the ranges of calosim.data.particle_checks too
        (None: the simulator's attribute). ``source``: where the particles come from
        (a file name), for error messages, which count rows from ``first_index``.
        """
        raise_if_interrupted()  # chunked runs call simulate often: a lost Ctrl-C stops here
        source = source or "particles"
        array = as_particle_array(particles, source=source, first_row=first_index)
        if not (self.allow_out_of_range if allow_out_of_range is None else allow_out_of_range):
            check_ranges(array, source=source, first_row=first_index)
        if seed is None:
            seed = fresh_seed()
        generators = block_generators(int(seed), first_index, len(array))
        if len(array) == 0:
            return np.zeros((0, 44, 44), dtype=np.float32)
        try:
            return self._simulate(array, generators)
        except ParticleRowError as error:
            raise CalosimError(f"{source}: particle row {first_index + error.row} (0-based): "
                               f"{error.problem}") from None

    @abstractmethod
    def _simulate(
        self, particles: np.ndarray, generators: Sequence[np.random.Generator]
    ) -> np.ndarray:
        """Rows [k * RANDOM_BLOCK, (k + 1) * RANDOM_BLOCK) draw only from generators[k]."""

    def describe(self) -> dict[str, Any]:
        """What this simulator is, for file attributes and `calosim info`."""
        return {"simulator": self.name}
