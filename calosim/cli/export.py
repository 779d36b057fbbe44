"""`calosim export`: a trained model in the form ALICE O2's ZDC fast simulation runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.option("--model", required=True, help="Model file (model.pt) to export.")
@click.option("--format", "export_format", type=click.Choice(["onnx"]), default="onnx",
              show_default=True, help="Export format.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Directory for model.onnx and scales.txt.")
@click.option("--opset", type=click.IntRange(17), default=17, show_default=True,
              help="ONNX opset version.")
def command(model: str, export_format: str, out_dir: Path, opset: int) -> None:
    """Write OUT/model.onnx (inputs: noise (batch, 10), standardised particle (batch, 9);
    output: (batch, 1936) log(1 + photons)) and OUT/scales.txt (the means and scales)."""
    from calosim.production.export import export_onnx
    from calosim.simulators.loading import load

    result = export_onnx(load(model), out_dir, opset=opset)
    click.echo(
        f"wrote {result.model_path} and {result.scales_path} ({export_format}, opset "
        f"{result.opset}; onnxruntime matches torch to {result.max_abs_difference:.1g})"
    )
