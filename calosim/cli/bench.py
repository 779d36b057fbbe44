"""`calosim bench`: responses per second and peak memory of a simulator."""

from __future__ import annotations

import json

import click

from calosim.cli.options import device_option


@click.command("bench")
@click.option("--simulator", default=None, help="Built-in simulator name (mc).")
@click.option("--model", default=None, help="Model file to benchmark.")
@click.option("--onnx", "onnx_dir", default=None,
              help="O2 export directory (calosim export) to time as O2 runs it: one "
                   "particle per call, one onnxruntime thread, and batched.")
@click.option("--n", "n", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1024), default=8192, show_default=True)
@click.option("--against-mc", type=click.IntRange(0), default=0, show_default=True,
              help="Also time the Monte Carlo on this many particles and print the speed-up.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch CPU threads (default: torch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@device_option
def command(
    simulator: str | None, model: str | None, onnx_dir: str | None, n: int, batch_size: int,
    against_mc: int, threads: int | None, as_json: bool, device: str,
) -> None:
    """Time a simulator on N particles of the default gun (streaming, nothing kept)."""
    from calosim.errors import CalosimError
    from calosim.production.bench import benchmark, benchmark_o2
    from calosim.simulators.loading import load

    if sum(source is not None for source in (simulator, model, onnx_dir)) != 1:
        raise CalosimError("give exactly one of --simulator NAME, --model FILE or --onnx DIR")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if onnx_dir is not None:
        result = benchmark_o2(onnx_dir, n, batch_size=batch_size)
    else:
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
