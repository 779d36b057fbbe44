"""Options shared by several commands, so they read the same everywhere."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from calosim.production.stream import DEFAULT_CHUNK


class _PathOption(click.Path):
    """click.Path that refuses an empty name, which would silently mean the current
    directory (and overwrite what lies there)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty name is not a path", param, ctx)
        return super().convert(value, param, ctx)


class _FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN and infinities (FloatRange lets NaN pass)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


PATH = _PathOption(path_type=Path)
# numpy seeds any integer >= 0; output files record the seed as a signed 64-bit integer
SEED = click.IntRange(0, 2**63 - 1)


def finite_float(min: float | None = None, max: float | None = None, *,
                 min_open: bool = False) -> click.FloatRange:
    """A float option type with bounds that refuses NaN and infinities."""
    return _FiniteFloatRange(min, max, min_open=min_open)


seed_option = click.option(
    "--seed", type=SEED, default=None,
    help="Random seed (recorded in the output). Default: a fresh one, printed.",
)
chunk_option = click.option(
    "--batch-size", "--chunk-size", "chunk_size", type=click.IntRange(1), default=DEFAULT_CHUNK,
    show_default=True, help="Responses simulated and written per chunk (rounded to 1024).",
)
progress_option = click.option(
    "--progress/--no-progress", default=True, show_default=True,
    help="Show a progress bar (on a terminal).",
)
parity_option = click.option(
    "--parity", type=click.Choice(["odd", "even"]), default="odd", show_default=True,
    help="Pixels read by the common PMT: (x + y) odd (default, ALICE O2 fast sim) or even.",
)
allow_out_of_range_option = click.option(
    "--allow-out-of-range", is_flag=True,
    help="Simulate particles outside the ranges of calosim.data.particle_checks (energy, "
    "E >= |p|, mass, charge, vertex) too; NaN and infinities are refused all the same.",
)
device_option = click.option(
    "--device", default="cpu", show_default=True,
    help="torch device for learned models (cpu, cuda).",
)


def resolve_seed(seed: int | None) -> int:
    """The given seed, or a fresh one; commands report it in their summary line and
    record it in their output, so a run can be repeated."""
    if seed is not None:
        return seed
    from calosim.simulators.base import fresh_seed

    return fresh_seed()


def creator_command(**resolved: object) -> str:
    """The running command with its options (``resolved`` ones replacing the given
    values, e.g. a drawn seed), recorded in output files."""
    ctx = click.get_current_context()
    params = {**ctx.params, **resolved}
    options = " ".join(
        f"--{name.replace('_', '-')} {value}"
        for name, value in params.items()
        if value is not None and value is not False
    )
    return f"{ctx.command_path} {options}".strip()
