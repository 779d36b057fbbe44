"""`calosim simulate`: the embedded Monte Carlo, on gun particles or on a particle file."""

from __future__ import annotations

from pathlib import Path

import click

from calosim.cli.options import (
    PATH,
    allow_out_of_range_option,
    chunk_option,
    creator_command,
    finite_float,
    progress_option,
    resolve_seed,
    seed_option,
)
from calosim.errors import CalosimError


@click.command("simulate")
@click.option("--n", "n", type=click.IntRange(1), help="Number of responses from the particle gun.")
@click.option("--particles", type=PATH, help="Particle file to simulate.")
@click.option("--out", type=PATH, required=True, help="Output .h5 or .root.")
@click.option(
    "--min-photons", type=finite_float(0), default=0.0, show_default=True,
    help="With --n: keep only responses with at least this many photons (real data: 10).",
)
@click.option("--simulator", default="mc", show_default=True, help="Simulator name or model file.")
@allow_out_of_range_option
@seed_option
@chunk_option
@progress_option
def command(
    n: int | None, particles: Path | None, out: Path, min_photons: float, simulator: str,
    allow_out_of_range: bool, seed: int | None, chunk_size: int, progress: bool,
) -> None:
    """Simulate ZN responses: `--n N` gun particles, or every particle of `--particles FILE`."""
    from calosim.production.stream import simulate_file, simulate_gun
    from calosim.simulators.loading import load

    if (n is None) == (particles is None):
        raise CalosimError("give exactly one of --n N or --particles FILE")
    if particles is not None and min_photons > 0:
        raise CalosimError("--min-photons applies to gun particles (--n) only")
    sim = load(simulator, allow_out_of_range=allow_out_of_range)
    seed = resolve_seed(seed)
    creator = creator_command(seed=seed)
    if n is not None:
        summary = simulate_gun(
            sim, n, out, seed=seed, min_photons=min_photons, chunk_size=chunk_size,
            progress=progress, creator=creator,
        )
    else:
        summary = simulate_file(
            sim, particles, out, seed=seed, chunk_size=chunk_size, progress=progress,
            creator=creator,
        )
    rate = summary.n_sampled / max(summary.seconds, 1e-9)
    click.echo(
        f"wrote {summary.n_responses} responses to {summary.out} "
        f"({summary.seconds:.1f} s, {rate:,.0f} particles/s, seed {seed})"
    )
