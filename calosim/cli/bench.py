"""`calosim bench`: responses per second and peak memory of a simulator."""

from __future__ import annotations

import json

import click

from calosim.cli.options import device_option


@click.command("bench")
@click.option("--simulator", default=None, help="Built-in simulator name (mc).")
@click.option("--model", default=None, help="Model file to benchmark.")
@click.option("--n", "n", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1024), default=8192, show_default=True)
@click.option("--against-mc", type=click.IntRange(0), default=0, show_default=True,
              help="Also time the Monte Carlo on this many particles and print the speed-up.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch CPU threads (default: torch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@device_option
def command(
    simulator: str | None, model: str | None, n: int, batch_size: int, against_mc: int,
    threads: int | None, as_json: bool, device: str,
) -> None:
    """Time a simulator on N particles of the default gun (streaming, nothing kept)."""
    from calosim.errors import CalosimError
    from calosim.production.bench import benchmark
    from calosim.simulators.loading import load

    if (simulator is None) == (model is None):
        raise CalosimError("give exactly one of --simulator NAME or --model FILE")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    result = benchmark(load(simulator or model, device=device), n, batch_size=batch_size)
    if against_mc:
        mc = benchmark(load("mc"), against_mc, batch_size=batch_size)
        result["mc_responses_per_second"] = mc["responses_per_second"]
        result["speedup_vs_mc"] = result["responses_per_second"] / mc["responses_per_second"]
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        shown = f"{value:,.4g}" if isinstance(value, float) else value
        click.echo(f"{key:>24}: {shown}")
