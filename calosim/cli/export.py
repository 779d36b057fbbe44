"""`calosim export`: a trained model as the files ALICE O2's ZN fast simulation loads."""

from __future__ import annotations

from pathlib import Path

import click

# calosim.production.o2.graphs.DECISIONS, named here so that --help does not import torch
DECISIONS = ("sample", "threshold")


@click.command("export")
@click.option("--model", required=True, help="Model file (model.pt) to export.")
@click.option("--format", "export_format", type=click.Choice(["onnx"]), default="onnx",
              show_default=True, help="Export format.")
@click.option("--out", "out_dir", required=True,
              help="Directory for the exported files.")
@click.option("--classifier", "decision", type=click.Choice(DECISIONS), default="sample",
              show_default=True,
              help="How the classifier decides from the gate's P(kept): 'sample' outputs a "
                   "draw, 1 or 0 (calosim's own empty fraction); 'threshold' outputs "
                   "P(kept), which O2 rounds (simulates when P(kept) >= 0.5).")
@click.option("--opset", type=click.IntRange(17), default=17, show_default=True,
              help="ONNX opset version.")
def command(model: str, export_format: str, out_dir: str, decision: str, opset: int) -> None:
    """Write OUT/model.onnx and OUT/scales.txt (the generator), OUT/classifier.onnx and
    OUT/classifier_scales.txt (the gate), and OUT/manifest.json, as O2 loads them.

    The generator takes noise (batch, 10) and the standardised particle (batch, 9); its
    output 0, (batch, 1936), gives O2's hit path the model's integer photons. The scales
    files expect O2's charge unit (|e|/3). Validate O2's channels with --parity even."""
    from calosim.errors import CalosimError
    from calosim.production.o2 import export_o2
    from calosim.simulators.loading import load

    if not out_dir.strip():
        raise CalosimError("--out must name a directory")
    result = export_o2(load(model), Path(out_dir), decision=decision, opset=opset)
    names = ", ".join(path.name for path in result.files.values())
    click.echo(f"wrote {names} to {result.directory} ({export_format}, opset {result.opset}, "
               f"rounding {result.rounding}, classifier {result.decision}; onnxruntime "
               f"matches torch to {result.max_abs_difference:.1g})")
