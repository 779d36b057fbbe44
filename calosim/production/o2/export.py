"""Write a learned model as the files ALICE O2's ZN fast simulation loads.

``export_o2`` writes, into one directory: the generator (``model.onnx``) and its scales
file, the classifier (``classifier.onnx``, the model's gate) and its scales file, and a
manifest. Every graph is checked in onnxruntime against the torch model before anything
is written, and the files are renamed into place together at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calosim._version import __version__
from calosim.data import (
    N_ATTRIBUTES,
    N_PIXELS,
    ParticleStandardiser,
    atomic_output,
    write_scales_file,
)
from calosim.errors import CalosimError
from calosim.models.base import LearnedSimulator
from calosim.production.o2.graphs import (
    DECISIONS,
    O2_NOISE_DIM,
    PHOTON_OFFSET,
    ClassifierCore,
    GeneratorCore,
    O2Classifier,
    O2Generator,
    VerifiedInputs,
    extra_noise_dim,
    has_gate,
)
from calosim.simulators.base import DetectorSimulator

DEFAULT_OPSET = 17
MIN_OPSET = 17
MODEL_FILE = "model.onnx"
SCALES_FILE = "scales.txt"
CLASSIFIER_FILE = "classifier.onnx"
CLASSIFIER_SCALES_FILE = "classifier_scales.txt"
MANIFEST_FILE = "manifest.json"
GENERATOR_INPUTS = ("noise", "conditions")
GENERATOR_OUTPUTS = ("response", "log_expected_photons")
CLASSIFIER_INPUTS = ("conditions",)
CLASSIFIER_OUTPUTS = ("simulate", "keep_probability")
# TParticlePDG::Charge() is in units of |e|/3; calosim's charge is in units of e.
O2_CHARGE_UNIT = 3.0
CHARGE_COLUMN = 8
# O2's hit path gives the common PMT the fibres with (x + y) even.
HIT_PARITY = "even"
# Agreement asked of onnxruntime against torch (log space); float32 graphs agree to ~1e-6,
# so this only catches a wrongly exported operation.
VERIFY_TOLERANCE = 1e-4
# Share of a verification batch's pixels whose rounding may differ between onnxruntime
# and torch: counts + jitter within float round-off of an integer.
ROUNDING_FLIP_SHARE = 1e-3
_VERIFY_BATCH = 64
_CHARGE_NOTE = "charge in units of |e|/3 as O2 feeds it (a proton is 3)"


@dataclass(frozen=True)
class O2Export:
    """What ``export_o2`` wrote; differences are onnxruntime against torch, log space."""

    directory: Path
    files: dict[str, Path]
    opset: int
    decision: str
    rounding: str
    max_abs_difference: float
    manifest: dict[str, Any] = field(repr=False)


def export_refusal(simulator: DetectorSimulator) -> str | None:
    """Why ``simulator`` cannot run as O2's two graphs, or None if it can."""
    if not isinstance(simulator, LearnedSimulator):
        return f"{simulator.name!r} is not a learned model (only model files export to ONNX)"
    model = simulator.model
    if model.onnx_refusal:
        return f"model {simulator.name!r} cannot be exported to ONNX: {model.onnx_refusal}"
    if simulator.log_transform != "log1p":
        return (f"model {simulator.name!r} works in {simulator.log_transform!r} space; O2 "
                "expects log(1 + x)")
    if len(model.response_noise_shape) != 1:
        return (f"model {simulator.name!r} takes noise of shape {tuple(model.noise_shape)} "
                f"per response; O2 feeds a vector of {O2_NOISE_DIM} numbers")
    return None


def o2_standardiser(standardiser: ParticleStandardiser) -> ParticleStandardiser:
    """The model's standardisation for O2's raw attributes: the charge's mean and scale in
    O2's unit, so (q_O2 - mean) / scale is the model's standardised charge."""
    means, scales = standardiser.means.copy(), standardiser.scales.copy()
    means[CHARGE_COLUMN] *= O2_CHARGE_UNIT
    scales[CHARGE_COLUMN] *= O2_CHARGE_UNIT
    return ParticleStandardiser(means, scales)


def export_o2(
    simulator: DetectorSimulator, out_dir: str | os.PathLike[str], *,
    decision: str = "sample", opset: int = DEFAULT_OPSET,
) -> O2Export:
    """Write O2's files for ``simulator`` into ``out_dir`` (see the module docstring).

    ``decision`` sets how the classifier turns the gate's probability into O2's rounded
    decision (see ``DECISIONS``). Refuses, with one line, what O2 cannot run."""
    refusal = export_refusal(simulator)
    if refusal is not None:
        raise CalosimError(refusal)
    assert isinstance(simulator, LearnedSimulator)  # export_refusal checked it
    if decision not in DECISIONS:
        raise CalosimError(f"unknown classifier decision {decision!r} "
                           f"(known: {', '.join(DECISIONS)})")
    if opset < MIN_OPSET:
        raise CalosimError(f"ONNX opset {opset} is too old; use {MIN_OPSET} or newer")
    # unrounded models still give O2 integers: stochastic rounding keeps the sums unbiased
    rounding = simulator.rounding if simulator.round_counts else "stochastic"
    model = simulator.model
    was_training = model.training
    model.to("cpu").eval()
    try:
        generator = GeneratorCore(model, rounding)
        classifier = ClassifierCore(model, decision)
        generator_bytes, generator_difference = _export_generator(generator, opset, simulator)
        classifier_bytes, classifier_difference = _export_classifier(
            classifier, opset, simulator)
    finally:
        model.to(simulator.device).train(was_training)
    effective_decision = decision if has_gate(model) else "always"
    manifest = _manifest(simulator, rounding, effective_decision, opset,
                         {MODEL_FILE: generator_bytes, CLASSIFIER_FILE: classifier_bytes})
    files = _write_files(Path(out_dir), {
        MODEL_FILE: generator_bytes, CLASSIFIER_FILE: classifier_bytes,
        MANIFEST_FILE: (json.dumps(manifest, indent=2) + "\n").encode(),
    }, o2_standardiser(simulator.standardiser))
    return O2Export(Path(out_dir), files, opset, effective_decision, rounding,
                    max(generator_difference, classifier_difference), manifest)


# ------------------------------------------------------------------------ the graphs


def _export_generator(core: GeneratorCore, opset: int, simulator: LearnedSimulator
                      ) -> tuple[bytes, float]:
    extra_dim = extra_noise_dim(core.model)
    stochastic = core.rounding == "stochastic"
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((_VERIFY_BATCH, O2_NOISE_DIM), dtype=np.float32)
    conditions = rng.standard_normal((_VERIFY_BATCH, N_ATTRIBUTES), dtype=np.float32)
    checked = [noise, conditions]
    names = list(GENERATOR_INPUTS)
    if extra_dim:
        checked.append(rng.standard_normal((_VERIFY_BATCH, extra_dim), dtype=np.float32))
        names.append("extra_noise")
    if stochastic:
        checked.append(rng.random((_VERIFY_BATCH, N_PIXELS), dtype=np.float32))
        names.append("jitter")
    verified = VerifiedInputs(core, (True, True, bool(extra_dim), stochastic))
    expected = _torch_outputs(verified, checked)
    got = _run(_to_onnx(verified, checked, names, GENERATOR_OUTPUTS, opset, simulator.name),
               checked)
    difference = float(np.abs(got[1] - expected[1]).max())
    flips = hit_photons(got[0]) != hit_photons(expected[0])
    if not (difference <= VERIFY_TOLERANCE and flips.mean() <= ROUNDING_FLIP_SHARE):
        raise CalosimError(
            f"model {simulator.name!r}: the exported generator disagrees with the model "
            f"(largest difference {difference:.3g} in log space, {int(flips.sum())} pixels "
            "rounded differently)")
    graph = _to_onnx(O2Generator(core), checked[:2], names[:2], GENERATOR_OUTPUTS, opset,
                     simulator.name, simulator)
    hits, log_counts = _run(graph, checked[:2])
    photons = hit_photons(hits)
    counts = np.maximum(np.expm1(log_counts.astype(np.float64)), 0)
    if hits.shape != (_VERIFY_BATCH, N_PIXELS) or not np.all(np.abs(photons - counts) < 1.001):
        raise CalosimError(f"model {simulator.name!r}: the exported generator's photons do "
                           "not follow its counts")
    return graph, difference


def _export_classifier(core: ClassifierCore, opset: int, simulator: LearnedSimulator
                       ) -> tuple[bytes, float]:
    rng = np.random.default_rng(1)
    conditions = rng.standard_normal((_VERIFY_BATCH, N_ATTRIBUTES), dtype=np.float32)
    uniform = rng.random((_VERIFY_BATCH, 1), dtype=np.float32)
    samples = O2Classifier(core).samples
    checked = [conditions, uniform] if samples else [conditions]
    names = [*CLASSIFIER_INPUTS, "uniform"] if samples else list(CLASSIFIER_INPUTS)
    verified = VerifiedInputs(core, (True, samples))
    expected = _torch_outputs(verified, checked)
    got = _run(_to_onnx(verified, checked, names, CLASSIFIER_OUTPUTS, opset, simulator.name),
               checked)
    difference = float(np.abs(got[1] - expected[1]).max())
    near_boundary = np.abs(uniform - (1.0 - expected[1])) < VERIFY_TOLERANCE
    agrees = (np.abs(got[0] - expected[0]) <= VERIFY_TOLERANCE) | (near_boundary & samples)
    if not (difference <= VERIFY_TOLERANCE and agrees.all()):
        raise CalosimError(f"model {simulator.name!r}: the exported classifier disagrees "
                           f"with the model (largest difference {difference:.3g})")
    graph = _to_onnx(O2Classifier(core), [conditions], list(CLASSIFIER_INPUTS),
                     CLASSIFIER_OUTPUTS, opset, simulator.name, simulator)
    decisions = _run(graph, [conditions])[0]
    if decisions.shape != (_VERIFY_BATCH, 1) or not np.all((decisions >= 0) & (decisions <= 1)):
        raise CalosimError(f"model {simulator.name!r}: the exported classifier's decisions "
                           "are not in [0, 1]")
    return graph, difference


def hit_photons(response: np.ndarray) -> np.ndarray:
    """Photons per fibre as O2's hit path takes them: (int) expm1(value), kept if > 0."""
    photons = np.trunc(np.expm1(np.asarray(response, dtype=np.float32)))
    return np.where(photons > 0, photons, 0)


def _torch_outputs(module: nn.Module, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    with torch.inference_mode():
        outputs = module(*(torch.from_numpy(x) for x in inputs))
    return [output.numpy() for output in outputs]


def _run(model_bytes: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model_bytes, options,
                                           providers=["CPUExecutionProvider"])
    feeds = {binding.name: x for binding, x in zip(session.get_inputs(), inputs, strict=True)}
    return list(session.run(None, feeds))


def _to_onnx(module: nn.Module, inputs: Sequence[np.ndarray], input_names: Sequence[str],
             output_names: Sequence[str], opset: int, name: str,
             provenance: LearnedSimulator | None = None) -> bytes:
    """``module`` as ONNX bytes with a dynamic batch axis; with ``provenance``, the
    model's metadata is added and the graph is checked by onnx."""
    _register_symbolics(opset)
    example = tuple(torch.from_numpy(x[:2]) for x in inputs)
    axes = {axis: {0: "batch"} for axis in (*input_names, *output_names)}
    buffer = io.BytesIO()
    try:
        with _stderr_kept_apart(), warnings.catch_warnings():
            # The TorchScript exporter works offline with no extra package; torch marks
            # it deprecated, which says nothing about the graph it writes.
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, buffer, input_names=list(input_names),
                              output_names=list(output_names), opset_version=opset,
                              dynamo=False, dynamic_axes=axes)
    except Exception as error:  # noqa: BLE001 - any exporter failure means "cannot export"
        text = str(error).strip()
        reason = text.splitlines()[0][:200] if text else type(error).__name__
        raise CalosimError(f"model {name!r} cannot be exported to ONNX: {reason}") from None
    if provenance is None:
        return buffer.getvalue()
    return _with_metadata(buffer.getvalue(), provenance)


@contextlib.contextmanager
def _stderr_kept_apart() -> Iterator[None]:
    """The exporter's C++ side prints graphs to file descriptor 2; keep them off the
    user's terminal."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_REGISTERED: set[int] = set()


def _register_symbolics(opset: int) -> None:
    """ONNX forms of two operations the TorchScript exporter lacks (expm1 as Exp - 1,
    the normal CDF as 1/2 (1 + erf(x / sqrt 2))), once per opset."""
    if opset in _REGISTERED:
        return
    from torch.onnx import register_custom_op_symbolic

    def expm1(g: Any, x: Any) -> Any:
        return g.op("Sub", g.op("Exp", x), g.op("Constant", value_t=torch.tensor(1.0)))

    def ndtr(g: Any, x: Any) -> Any:
        scaled = g.op("Div", x, g.op("Constant", value_t=torch.tensor(2.0**0.5)))
        half = g.op("Constant", value_t=torch.tensor(0.5))
        return g.op("Mul", half, g.op("Add", g.op("Constant", value_t=torch.tensor(1.0)),
                                      g.op("Erf", scaled)))

    register_custom_op_symbolic("aten::expm1", expm1, opset)
    register_custom_op_symbolic("aten::special_ndtr", ndtr, opset)
    _REGISTERED.add(opset)


def _with_metadata(onnx_bytes: bytes, simulator: LearnedSimulator) -> bytes:
    import onnx

    proto = onnx.load_model_from_string(onnx_bytes)
    proto.producer_name = "calosim"
    proto.producer_version = __version__
    metadata = {
        "calosim_model": simulator.name,
        "calosim_version": __version__,
        "source_model_file": str(simulator.info.get("model_file", "")),
        "data_fingerprint": str(simulator.info.get("data_fingerprint") or ""),
        "conditions": "(batch, 9) (x - mean) / scale, columns Energy Vx Vy Vz Px Py Pz "
                      f"mass charge, {_CHARGE_NOTE}",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


# ------------------------------------------------------------------------ the files


def _manifest(simulator: LearnedSimulator, rounding: str, decision: str, opset: int,
              graphs: dict[str, bytes]) -> dict[str, Any]:
    source = simulator.info.get("model_file")
    source_path = Path(source) if source else None
    run = {
        "model_file": str(source_path.resolve()) if source_path else None,
        "model_file_sha256": (_sha256(source_path.read_bytes())
                              if source_path and source_path.is_file() else None),
        "config": (str((source_path.parent / "config.yaml").resolve())
                   if source_path and (source_path.parent / "config.yaml").is_file() else None),
        "seed": simulator.info.get("seed"),
        "data_fingerprint": simulator.info.get("data_fingerprint"),
        "trained_with_calosim": simulator.info.get("calosim_version"),
    }
    return {
        "format": "calosim O2 export",
        "calosim_version": __version__,
        "model": simulator.name,
        "training_run": run,
        "opset": opset,
        "generator": {
            "file": MODEL_FILE, "scales": SCALES_FILE, "sha256": _sha256(graphs[MODEL_FILE]),
            "inputs": [f"noise (batch, {O2_NOISE_DIM}) standard normal",
                       "conditions (batch, 9) standardised with scales.txt"],
            "output": (f"(batch, {N_PIXELS}) log(1 + k + {PHOTON_OFFSET}) for k > 0 integer "
                       "photons per fibre, 0 elsewhere; 44 x 44 row-major, index 44 * y + x"),
            "rounding": rounding,
            "noise_drawn_in_graph": extra_noise_dim(simulator.model),
        },
        "classifier": {
            "file": CLASSIFIER_FILE, "scales": CLASSIFIER_SCALES_FILE,
            "sha256": _sha256(graphs[CLASSIFIER_FILE]),
            "decision": decision,
            "output": "(batch, 1): O2 simulates the particle when round(value) != 0",
        },
        "units": {"energy": "GeV", "momentum": "GeV", "vertex": "cm", "mass": "MeV",
                  "charge": _CHARGE_NOTE},
        "channels": {"parity": HIT_PARITY,
                     "validate": f"calosim validate --parity {HIT_PARITY}"},
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_files(out_dir: Path, contents: dict[str, bytes],
                 scales: ParticleStandardiser) -> dict[str, Path]:
    if out_dir.exists() and not out_dir.is_dir():
        raise CalosimError(f"{out_dir}: exists and is not a directory")
    paths = {name: out_dir / name for name in (*contents, SCALES_FILE, CLASSIFIER_SCALES_FILE)}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            temps = {name: stack.enter_context(atomic_output(path))
                     for name, path in paths.items()}
            for name, data in contents.items():
                temps[name].write_bytes(data)
            write_scales_file(temps[SCALES_FILE], scales)
            write_scales_file(temps[CLASSIFIER_SCALES_FILE], scales)
    except OSError as error:
        raise CalosimError(f"{out_dir}: cannot write the export ({error.strerror or error})") \
            from None
    return paths
