"""Export a learned model for the ZDC fast simulation of ALICE O2 (ONNX Runtime, CPU).

The interface O2 expects (see the project's facts file):

- input 0, ``noise``: (batch, 10) float32, standard normal;
- input 1, ``conditions``: (batch, 9) float32, the particle attributes in
  PARTICLE_COLUMNS order, standardised as (x - mean) / scale with the numbers of
  ``scales.txt`` (``#means``, 9 lines, an empty line, ``#scales``, 9 lines);
- output ``response``: (batch, 1936) float32, the 44 x 44 image in log(1 + photons),
  flattened row-major ([x, y] -> 44 * x + y); O2 applies exp(x) - 1, sums the 5
  channels and rounds them to integers.

The batch axis is dynamic. The graph clamps its output at 0: calosim's photon counts
are max(exp(y) - 1, 0), and O2 applies exp(y) - 1 without a clamp, so clamping y at 0
makes O2 read exactly calosim's counts. Noise drawn as calosim draws it (per block of
RANDOM_BLOCK particles, see calosim.simulators.base) gives the same responses in O2.

Models that cannot be expressed this way are refused with one line: non-learned
simulators, noise other than (10,) per response (e.g. the Sinkhorn AE's gate, which draws
an 11th number), and models whose class sets ``onnx_refusal`` to the reason (an iterative
diffusion sampler is not one feed-forward graph).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calosim._version import __version__
from calosim.data import N_ATTRIBUTES, N_PIXELS, atomic_output, write_scales_file
from calosim.errors import CalosimError
from calosim.models.base import LearnedSimulator
from calosim.simulators.base import DetectorSimulator

O2_NOISE_DIM = 10
DEFAULT_OPSET = 17
MIN_OPSET = 17
INPUT_NAMES = ("noise", "conditions")
OUTPUT_NAME = "response"
MODEL_FILE = "model.onnx"
SCALES_FILE = "scales.txt"
# Agreement asked of onnxruntime against torch before the files are written (log space);
# float32 graphs agree to ~1e-6, so this only catches a wrongly exported operation.
VERIFY_TOLERANCE = 1e-4
_VERIFY_BATCH = 64


class O2Generator(nn.Module):
    """The graph O2 runs: (noise (B, 10), standardised conditions (B, 9)) -> (B, 1936)
    log(1 + photons), never below 0 (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, noise: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        images = self.model.generate(noise, conditions)
        return images.clamp(min=0).flatten(1)


@dataclass(frozen=True)
class ExportResult:
    model_path: Path
    scales_path: Path
    opset: int
    max_abs_difference: float  # onnxruntime vs torch on a verification batch, log space


def export_refusal(simulator: DetectorSimulator) -> str | None:
    """Why ``simulator`` cannot be exported to O2's interface, or None if it can."""
    if not isinstance(simulator, LearnedSimulator):
        return f"{simulator.name!r} is not a learned model (only model files export to ONNX)"
    model = simulator.model
    reason = getattr(model, "onnx_refusal", None)
    if reason:
        return f"model {simulator.name!r} cannot be exported to ONNX: {reason}"
    if simulator.log_transform != "log1p":
        return (f"model {simulator.name!r} works in {simulator.log_transform!r} space; O2 "
                "expects log(1 + x)")
    shape = tuple(model.noise_shape)
    if shape != (O2_NOISE_DIM,):
        gate = " (its empty-response gate draws one more number; train it without the gate)"
        return (f"model {simulator.name!r} takes noise of shape {shape} per response, but O2 "
                f"feeds (batch, {O2_NOISE_DIM})"
                f"{gate if getattr(model, 'gate', None) is not None else ''}")
    return None


def _onnx_bytes(graph: O2Generator, opset: int, name: str) -> bytes:
    example = (torch.zeros(2, O2_NOISE_DIM), torch.zeros(2, N_ATTRIBUTES))
    batch_axis = {0: "batch"}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter works offline with no extra package; torch marks
            # it deprecated, which says nothing about the graph it writes.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, example, buffer, input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME], opset_version=opset, dynamo=False,
                dynamic_axes={INPUT_NAMES[0]: batch_axis, INPUT_NAMES[1]: batch_axis,
                              OUTPUT_NAME: batch_axis},
            )
    except Exception as error:  # noqa: BLE001 - any exporter failure means "cannot export"
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise CalosimError(f"model {name!r} cannot be exported to ONNX: {reason}") from None
    return buffer.getvalue()


def _with_metadata(onnx_bytes: bytes, simulator: LearnedSimulator) -> Any:
    import onnx

    proto = onnx.load_model_from_string(onnx_bytes)
    proto.producer_name = "calosim"
    proto.producer_version = __version__
    metadata = {
        "calosim_model": simulator.name,
        "calosim_version": __version__,
        "source_model_file": str(simulator.info.get("model_file", "")),
        "data_fingerprint": str(simulator.info.get("data_fingerprint") or ""),
        "noise": f"(batch, {O2_NOISE_DIM}) standard normal",
        "conditions": "(batch, 9) (x - mean) / scale, means and scales in scales.txt, "
                      "columns Energy Vx Vy Vz Px Py Pz mass charge",
        "response": f"(batch, {N_PIXELS}) log(1 + photons), 44 x 44 row-major [x, y]",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


def run_onnx(model_bytes_or_path: bytes | str | os.PathLike[str], noise: np.ndarray,
             conditions: np.ndarray) -> np.ndarray:
    """Run an exported model in onnxruntime (CPU): (B, 10), (B, 9) -> (B, 1936)."""
    import onnxruntime

    source = (model_bytes_or_path if isinstance(model_bytes_or_path, bytes)
              else str(model_bytes_or_path))
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    feeds = {INPUT_NAMES[0]: np.asarray(noise, dtype=np.float32),
             INPUT_NAMES[1]: np.asarray(conditions, dtype=np.float32)}
    return session.run([OUTPUT_NAME], feeds)[0]


def _verify(graph: O2Generator, model_bytes: bytes, name: str) -> float:
    """Largest |onnxruntime - torch| on a fixed random batch; CalosimError if too large."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((_VERIFY_BATCH, O2_NOISE_DIM), dtype=np.float32)
    conditions = rng.standard_normal((_VERIFY_BATCH, N_ATTRIBUTES), dtype=np.float32)
    with torch.inference_mode():
        expected = graph(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()
    difference = float(np.abs(run_onnx(model_bytes, noise, conditions) - expected).max())
    if not difference <= VERIFY_TOLERANCE:
        raise CalosimError(f"model {name!r}: the exported ONNX graph disagrees with the model "
                           f"(largest difference {difference:.3g} in log space)")
    return difference


def export_onnx(
    simulator: DetectorSimulator, out_dir: str | os.PathLike[str], *,
    opset: int = DEFAULT_OPSET, verify: bool = True,
) -> ExportResult:
    """Write ``out_dir/model.onnx`` and ``out_dir/scales.txt`` for ALICE O2.

    Refuses (CalosimError, one line) what cannot be exported (see ``export_refusal``).
    With ``verify``, onnxruntime must reproduce the torch model before anything is
    written. Both files are written to temporary files and renamed into place at the end.
    """
    refusal = export_refusal(simulator)
    if refusal is not None:
        raise CalosimError(refusal)
    assert isinstance(simulator, LearnedSimulator)  # export_refusal checked it
    if opset < MIN_OPSET:
        raise CalosimError(f"ONNX opset {opset} is too old; use {MIN_OPSET} or newer")
    graph = O2Generator(simulator.model).to("cpu").eval()
    try:
        model_bytes = _onnx_bytes(graph, opset, simulator.name)
        proto = _with_metadata(model_bytes, simulator)
        model_bytes = proto.SerializeToString()
        difference = _verify(graph, model_bytes, simulator.name) if verify else float("nan")
    finally:
        simulator.model.to(simulator.device)  # the export ran on the CPU
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CalosimError(f"{out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path, scales_path = out_dir / MODEL_FILE, out_dir / SCALES_FILE
    try:
        with atomic_output(model_path) as model_temp, atomic_output(scales_path) as scales_temp:
            model_temp.write_bytes(model_bytes)
            write_scales_file(scales_temp, simulator.standardiser)
    except OSError as error:
        raise CalosimError(f"{out_dir}: cannot write the export ({error.strerror or error})") \
            from None
    return ExportResult(model_path, scales_path, opset, difference)
