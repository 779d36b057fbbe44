"""`calosim validate`: physics metrics of generated responses against a reference."""

from __future__ import annotations

import json
from pathlib import Path

import click

from calosim.cli.options import PATH, parity_option
from calosim.errors import CalosimError


@click.command("validate")
@click.option("--reference", type=PATH, default=None,
              help="Reference responses (full simulation).")
@click.option("--generated", type=PATH, multiple=True,
              help="Responses to judge (a model's output, or a second simulation); repeat "
                   "to compare several models in one report.")
@click.option("--label", "labels", multiple=True,
              help="Name of each --generated file in the report, in the same order "
                   "(default: the file's simulator attribute, else its stem).")
@click.option("--floor", type=PATH, default=None,
              help="A second independent full simulation of the reference particles.")
@click.option("--continual", "continual", type=PATH, default=None,
              help="A continual run directory (holding r_matrix.json): report its R matrix "
                   "and transfer metrics instead.")
@click.option("--energy-bins", type=click.IntRange(1), default=5, show_default=True,
              help="Equal-population energy bins of the per-energy breakdown.")
@click.option("--out", "out_dir", type=PATH, default=None,
              help="Directory for report.html, metrics.json and the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
@parity_option
def command(
    reference: Path | None, generated: tuple[Path, ...], labels: tuple[str, ...],
    floor: Path | None, continual: Path | None, energy_bins: int, out_dir: Path | None,
    as_json: bool, parity: str,
) -> None:
    """Channel W1 (per channel and mean), channel MAE and pooled log W1, beside the floor.

    With --out, also a self-contained DIR/report.html (figures embedded) for sign-off.
    """
    from calosim.report.validation import format_table, validate_continual, validate_files

    if continual is not None:
        if reference is not None or generated or floor is not None or labels:
            raise CalosimError("--continual takes no --reference, --generated, --floor or "
                               "--label")
        result = validate_continual(continual, out_dir)
    else:
        if reference is None or not generated:
            raise CalosimError("give --reference FILE and at least one --generated FILE "
                               "(or --continual RUN_DIR)")
        result = validate_files(
            reference, list(generated), floor=floor, out_dir=out_dir, parity=parity,
            labels=list(labels) or None, energy_bins=energy_bins,
        )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if continual is not None:
        click.echo("\n".join(f"{key:<20}{_number(value)}" for key, value in
                             result["transfer"].items() if key not in ("tasks", "metric")))
    else:
        click.echo(format_table(result))
    if out_dir is not None:
        click.echo(f"report in {out_dir}/report.html (with metrics.json and "
                   f"{len(result['plots'])} PNGs)")


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
