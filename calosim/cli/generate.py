"""`calosim generate`: a trained model (or the MC) over a particle file, streamed to disk."""

from __future__ import annotations

from pathlib import Path

import click

from calosim.cli.options import (
    chunk_option,
    creator_command,
    device_option,
    progress_option,
    resolve_seed,
    seed_option,
)


@click.command("generate")
@click.option("--model", required=True, help="Model file (model.pt) or built-in simulator name.")
@click.option(
    "--particles", type=click.Path(path_type=Path), required=True,
    help="Particle file: canonical .h5, .root, .npz or .csv with the 9 named columns.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output .h5 or .root.")
@seed_option
@chunk_option
@device_option
@progress_option
def command(
    model: str, particles: Path, out: Path, seed: int | None, chunk_size: int, device: str,
    progress: bool,
) -> None:
    """Generate one response per particle with MODEL; the output holds particles, responses
    and the 5 channels, readable by `calosim validate`."""
    from calosim.production.stream import simulate_file
    from calosim.simulators.loading import load

    simulator = load(model, device=device)
    seed = resolve_seed(seed)
    summary = simulate_file(
        simulator, particles, out, seed=seed, chunk_size=chunk_size, progress=progress,
        creator=creator_command(seed=seed),
    )
    rate = summary.n_responses / max(summary.seconds, 1e-9)
    click.echo(
        f"wrote {summary.n_responses} responses to {summary.out} "
        f"({summary.seconds:.1f} s, {rate:,.0f} responses/s, seed {seed})"
    )
