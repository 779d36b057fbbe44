"""`calosim info`: what a data file or a model file holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from calosim.cli.options import PATH

MODEL_SUFFIXES = {".pt", ".pth", ".ckpt"}


def describe(path: Path) -> dict[str, Any]:
    """A JSON-ready description of a data file or a model file."""
    if path.suffix.lower() in MODEL_SUFFIXES:
        from calosim.training.checkpoint import describe_calosim_file

        description = {"file": str(path), **describe_calosim_file(path)}
        if description["kind"] == "model":
            from calosim.simulators.loading import load

            simulator = load(path).describe()
            description.update({k: v for k, v in simulator.items() if k not in description})
        return description
    from calosim.data import describe_file

    return {"file": str(path), "kind": "data", **describe_file(path)}


def _print_tree(value: Any, indent: int = 0) -> None:
    pad = "  " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            click.echo(f"{pad}{key}:")
            _print_tree(item, indent + 1)
        else:
            if isinstance(item, float):
                item = f"{item:.6g}"
            click.echo(f"{pad}{key}: {item}")


@click.command("info")
@click.argument("path", type=PATH)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def command(path: Path, as_json: bool) -> None:
    """Show what PATH (a data file or a model file) holds."""
    if not path.exists():
        from calosim.errors import CalosimError

        raise CalosimError(f"{path}: no such file")
    info = describe(path)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        _print_tree(info)
