"""A consumer of exported files written from the O2 interface as documented (the
project's o2-interface facts), not from calosim's code: what ALICE O2 does per particle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime

SIDE = 44
HALF = 22


def o2_scales_lines(text: str) -> tuple[list[str], list[str]] | None:
    """The number lines O2 takes: lines up to exactly '#means', then lines to the first
    empty one; the same for '#scales'. None where a block is empty (O2 fails to load)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # std::getline: a final newline ends the last line
    position, blocks = 0, []
    for marker in ("#means", "#scales"):
        while position < len(lines) and lines[position] != marker:
            position += 1
        position += 1
        block = []
        while position < len(lines) and lines[position] != "":
            block.append(lines[position])
            position += 1
        if not block:
            return None
        blocks.append(block)
    return blocks[0], blocks[1]


def parse_o2_scales(path: Path) -> tuple[list[float], list[float]]:
    """The means and scales O2 loads (std::stof: float32); fails where O2 would."""
    blocks = o2_scales_lines(path.read_text())
    assert blocks is not None, f"{path}: an empty block, O2 would not load"
    means, scales = ([float(np.float32(float(line))) for line in block] for block in blocks)
    assert len(means) == len(scales), "sizes differ, O2 would not load"
    return means, scales


def cpp_round(value: float) -> float:
    return math.copysign(math.floor(abs(value) + 0.5), value)


class O2Consumer:
    """Classifier then generator, batch 1, 1 intra-op thread, inputs by position."""

    def __init__(self, directory: Path) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.classifier = onnxruntime.InferenceSession(
            str(directory / "classifier.onnx"), options, providers=["CPUExecutionProvider"])
        self.generator = onnxruntime.InferenceSession(
            str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.classifier_scales = parse_o2_scales(directory / "classifier_scales.txt")
        self.scales = parse_o2_scales(directory / "scales.txt")

    @staticmethod
    def attributes(row: np.ndarray) -> list[float]:
        """Energy, Vx, Vy, Vz, Px, Py, Pz (GeV, cm), mass (MeV), charge in |e|/3."""
        return [*map(float, row[:8]), float(row[8]) * 3]

    @staticmethod
    def standardise(values: list[float], scales: tuple[list[float], list[float]]
                    ) -> np.ndarray:
        means, widths = (np.asarray(s, dtype=np.float32) for s in scales)
        return ((np.asarray(values, dtype=np.float32) - means) / widths)[None].astype(np.float32)

    def _feeds(self, session: onnxruntime.InferenceSession, *tensors: np.ndarray) -> dict:
        inputs = session.get_inputs()
        assert len(inputs) == len(tensors)
        return {binding.name: tensor for binding, tensor in zip(inputs, tensors, strict=True)}

    def simulates(self, row: np.ndarray) -> bool:
        conditions = self.standardise(self.attributes(row), self.classifier_scales)
        output = self.classifier.run(None, self._feeds(self.classifier, conditions))[0]
        return cpp_round(float(np.asarray(output, dtype=np.float32).ravel()[0])) != 0

    def response(self, row: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Output 0 for one particle: 1936 float32 values."""
        conditions = self.standardise(self.attributes(row), self.scales)
        noise = np.asarray(noise, dtype=np.float32).reshape(1, 10)
        output = self.generator.run(None, self._feeds(self.generator, noise, conditions))[0]
        return np.asarray(output, dtype=np.float32).ravel()[: SIDE * SIDE]

    @staticmethod
    def hits(values: np.ndarray) -> np.ndarray:
        """(int) expm1(value) photons per fibre where positive, summed into
        [Ch1, Ch2, Ch3, Ch4, PMC]: x the column (fast index), (x + y) even to the PMC."""
        sums = np.zeros(5)
        photons_per_fibre = np.trunc(np.expm1(np.asarray(values, dtype=np.float32)))
        for index in np.flatnonzero(photons_per_fibre > 0):
            photons = int(photons_per_fibre[index])
            y, x = divmod(int(index), SIDE)
            if (x + y) % 2 == 0:
                sums[4] += photons
            else:
                sums[(x >= HALF) + 2 * (y >= HALF)] += photons
        return sums

    def channels(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """O2's 5 recorded channel sums for each particle (zeros when not simulated)."""
        out = np.zeros((len(rows), 5))
        for i, row in enumerate(rows):
            if self.simulates(row):
                out[i] = self.hits(self.response(row, rng.standard_normal(10)))
        return out
