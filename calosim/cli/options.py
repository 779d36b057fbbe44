"""Options shared by several commands, so they read the same everywhere."""

from __future__ import annotations

import click

from calosim.production.stream import DEFAULT_CHUNK

seed_option = click.option(
    "--seed", type=int, default=None,
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
device_option = click.option(
    "--device", default="cpu", show_default=True,
    help="torch device for learned models (cpu, cuda).",
)


def resolve_seed(seed: int | None) -> int:
    """The given seed, or a fresh one announced on stderr so the run can be repeated."""
    if seed is not None:
        return seed
    from calosim.simulators.base import fresh_seed

    seed = fresh_seed()
    click.echo(f"calosim: using seed {seed}", err=True)
    return seed


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
