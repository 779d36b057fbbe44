"""`calosim validate`: physics metrics of generated responses against a reference."""

from __future__ import annotations

import json
from pathlib import Path

import click

from calosim.cli.options import parity_option


@click.command("validate")
@click.option("--reference", type=click.Path(path_type=Path), required=True,
              help="Reference responses (full simulation).")
@click.option("--generated", type=click.Path(path_type=Path), required=True,
              help="Responses to judge (a model's output, or a second simulation).")
@click.option("--floor", type=click.Path(path_type=Path), default=None,
              help="A second independent full simulation of the reference particles.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Directory for metrics.json and the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
@parity_option
def command(
    reference: Path, generated: Path, floor: Path | None, out_dir: Path | None, as_json: bool,
    parity: str,
) -> None:
    """Channel W1 (per channel and mean), channel MAE and pooled log W1, beside the floor."""
    from calosim.report.validation import format_table, validate_files

    result = validate_files(reference, generated, floor=floor, out_dir=out_dir, parity=parity)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(format_table(result))
    if out_dir is not None:
        click.echo(f"metrics and plots in {out_dir}/ (metrics.json, {len(result['plots'])} PNGs)")
