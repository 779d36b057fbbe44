"""Run an O2 export the way O2 runs it: onnxruntime on the CPU, one intra-op thread, one
particle per call, the classifier first, inputs bound by position, output 0 read as
1936 floats and turned into hits by truncation. For validation and benchmarks of the
exported files themselves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from calosim.data import N_PIXELS, RESPONSE_SHAPE, as_particle_array, read_scales_file
from calosim.errors import CalosimError
from calosim.production.o2.export import (
    CHARGE_COLUMN,
    CLASSIFIER_FILE,
    CLASSIFIER_SCALES_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    O2_CHARGE_UNIT,
    SCALES_FILE,
    hit_photons,
)
from calosim.production.o2.graphs import O2_NOISE_DIM


def o2_attributes(particles: Any) -> np.ndarray:
    """calosim's particle rows (N, 9) as O2 builds them: float32, charge in |e|/3."""
    attributes = as_particle_array(particles).astype(np.float32)
    attributes[:, CHARGE_COLUMN] *= O2_CHARGE_UNIT
    return attributes


def o2_round(values: Any) -> np.ndarray:
    """std::round: to the nearest integer, halves away from zero."""
    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


class O2Runtime:
    """The exported files in ``directory`` loaded into two onnxruntime sessions."""

    def __init__(self, directory: str | os.PathLike[str], threads: int = 1) -> None:
        import onnxruntime

        self.directory = Path(directory)
        manifest_path = self.directory / MANIFEST_FILE
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CalosimError(f"{manifest_path}: not an O2 export "
                               f"({getattr(error, 'strerror', None) or error})") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads

        def session(name: str) -> Any:
            path = self.directory / name
            try:
                return onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])
            except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types
                raise CalosimError(f"{path}: cannot load ({str(error)[:200]})") from None

        self.generator, self.classifier = session(MODEL_FILE), session(CLASSIFIER_FILE)
        self.scales = read_scales_file(self.directory / SCALES_FILE)
        self.classifier_scales = read_scales_file(self.directory / CLASSIFIER_SCALES_FILE)
        self._generator_inputs = [i.name for i in self.generator.get_inputs()]
        self._classifier_input = self.classifier.get_inputs()[0].name

    def simulate(self, particles: Any, seed: int) -> np.ndarray:
        """Photon counts (N, 44, 44), one particle per call as O2 makes them; the noise of
        particle i is drawn from ``seed`` (O2 draws it from random_device instead)."""
        attributes = o2_attributes(particles)
        rng = np.random.default_rng(seed)
        responses = np.zeros((len(attributes), N_PIXELS), dtype=np.float32)
        for row, particle in enumerate(attributes):
            responses[row] = self._one(particle[None], rng)
        return responses.reshape(-1, *RESPONSE_SHAPE)

    def _one(self, particle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        conditions = self.classifier_scales.transform(particle)
        decision = self.classifier.run(None, {self._classifier_input: conditions})[0]
        if o2_round(decision.ravel()[0]) == 0:
            return np.zeros(N_PIXELS, dtype=np.float32)
        noise = rng.standard_normal((1, O2_NOISE_DIM), dtype=np.float32)
        feeds = dict(zip(self._generator_inputs, (noise, self.scales.transform(particle)),
                         strict=True))
        return hit_photons(self.generator.run(None, feeds)[0][0])

    def simulate_batched(self, particles: Any, seed: int, batch_size: int = 1024) -> np.ndarray:
        """The same responses' distribution, ``batch_size`` particles per call."""
        attributes = o2_attributes(particles)
        rng = np.random.default_rng(seed)
        responses = np.zeros((len(attributes), N_PIXELS), dtype=np.float32)
        for start in range(0, len(attributes), batch_size):
            rows = attributes[start:start + batch_size]
            conditions = self.classifier_scales.transform(rows)
            decision = self.classifier.run(None, {self._classifier_input: conditions})[0]
            kept = np.flatnonzero(o2_round(decision[:, 0]) != 0)
            if len(kept) == 0:
                continue
            noise = rng.standard_normal((len(kept), O2_NOISE_DIM), dtype=np.float32)
            feeds = dict(zip(self._generator_inputs,
                             (noise, self.scales.transform(rows[kept])), strict=True))
            responses[start + kept] = hit_photons(self.generator.run(None, feeds)[0])
        return responses.reshape(-1, *RESPONSE_SHAPE)
