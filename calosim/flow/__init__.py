"""ODE solvers for flow matching: integrate a learned velocity from noise (t = 1) to data
(t = 0). One solver per file; ``build_solver`` picks one by name."""

from calosim.flow.base import FlowSolver, Velocity
from calosim.flow.euler import EulerSolver
from calosim.flow.heun import HeunSolver

SOLVERS: dict[str, type[FlowSolver]] = {"euler": EulerSolver, "heun": HeunSolver}


def build_solver(name: str, steps: int) -> FlowSolver:
    """The solver ``name`` (a key of SOLVERS) with ``steps`` uniform steps."""
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r} (known: {', '.join(SOLVERS)})")
    return SOLVERS[name](steps)


__all__ = ["SOLVERS", "EulerSolver", "FlowSolver", "HeunSolver", "Velocity", "build_solver"]
