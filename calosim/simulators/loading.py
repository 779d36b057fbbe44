"""`calosim.load`: a simulator from the name of a built-in one or from a model file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from calosim.errors import ModelFileError
from calosim.simulators.base import DetectorSimulator


def _monte_carlo() -> DetectorSimulator:
    from calosim.simulators.montecarlo import MonteCarloSimulator

    return MonteCarloSimulator()


BUILTIN_SIMULATORS: dict[str, Callable[[], DetectorSimulator]] = {
    "mc": _monte_carlo,
    "montecarlo": _monte_carlo,
}


def load(path_or_name: str | Path, *, device: str = "cpu",
         allow_out_of_range: bool = False) -> DetectorSimulator:
    """Return the built-in simulator of that name ("mc") or the model stored in a file.

    ``allow_out_of_range``: its ``simulate`` takes particles outside the ranges of
    calosim.data.particle_checks too.
    """
    key = str(path_or_name)
    if key.lower() in BUILTIN_SIMULATORS and not Path(key).is_file():
        simulator = BUILTIN_SIMULATORS[key.lower()]()
    else:
        path = Path(key)
        if not path.is_file():
            known = ", ".join(sorted(BUILTIN_SIMULATORS))
            raise ModelFileError(f"{key}: no such model file (built-in simulators: {known})")
        from calosim.training.checkpoint import load_simulator

        simulator = load_simulator(path, device=device)
    simulator.allow_out_of_range = allow_out_of_range
    return simulator
