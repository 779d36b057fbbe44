"""A trained image model: its model file, and images generated from it.

An image model file is a calosim torch file of its own format (``calosim-image-model``),
so `calosim.load` refuses it rather than treating it as a ZN simulator. It holds the
model's name, config and weights and what the images are (benchmark, number of
classes, whether the model is class-conditional).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calosim._version import __version__
from calosim.errors import CalosimError, ModelFileError
from calosim.models.base import GenerativeModel, config_to_dict, resolve_device
from calosim.models.registry import build_model
from calosim.simulators.base import RANDOM_BLOCK, block_generators
from calosim.training.checkpoint import (
    FORMAT_VERSION,
    IMAGE_MODEL_FORMAT,
    atomic_torch_save,
    read_calosim_file,
)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N,) integer labels -> (N, n_classes) float32 one-hot rows."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise CalosimError(f"labels must lie in 0..{n_classes - 1}")
    rows = np.zeros((len(labels), n_classes), dtype=np.float32)
    rows[np.arange(len(labels)), labels] = 1.0
    return rows


@dataclass
class ImageGenerator:
    """A GenerativeModel trained on an image benchmark, on ``device``.

    ``conditional``: the model takes one-hot labels of ``n_classes`` classes; otherwise
    it takes no conditions and ignores the labels it is given.
    """

    model: GenerativeModel
    model_name: str
    benchmark: str
    n_classes: int
    conditional: bool
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.device = resolve_device(self.device)
        self.model = self.model.to(self.device)

    def conditions(self, labels: np.ndarray) -> np.ndarray:
        """The model's conditions for ``labels``: one-hot rows, or (N, 0) if unconditional."""
        if self.conditional:
            return one_hot(labels, self.n_classes)
        return np.zeros((len(labels), 0), dtype=np.float32)

    def generate(self, labels: np.ndarray, seed: int) -> np.ndarray:
        """One image per label, float32 (N, H, W) clipped to [0, 1].

        Noise is drawn per block of RANDOM_BLOCK rows from a generator of (seed, block),
        so an image depends only on the seed, its label and its position.
        """
        conditions = self.conditions(labels)
        shape = tuple(self.model.config.image_shape)
        images = np.empty((len(conditions), *shape), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for block, generator in enumerate(block_generators(seed, 0, len(conditions))):
                    rows = slice(block * RANDOM_BLOCK, (block + 1) * RANDOM_BLOCK)
                    noise = generator.standard_normal(
                        (len(conditions[rows]), *self.model.noise_shape), dtype=np.float32
                    )
                    output = self.model.generate(
                        torch.from_numpy(noise).to(self.device),
                        torch.from_numpy(conditions[rows]).to(self.device),
                    )
                    images[rows] = output.float().clamp(0.0, 1.0).cpu().numpy()
        finally:
            self.model.train(was_training)
        return images


def save_image_model(path: str | Path, generator: ImageGenerator, *, seed: int | None = None,
                     extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``generator`` (weights, config, benchmark) to ``path`` atomically."""
    state_dict = {k: v.detach().cpu().clone() for k, v in generator.model.state_dict().items()}
    payload = {
        "format": IMAGE_MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": generator.model_name,
        "config": config_to_dict(generator.model.config),
        "state_dict": state_dict,
        "benchmark": generator.benchmark,
        "n_classes": generator.n_classes,
        "conditional": generator.conditional,
        "calosim_version": __version__,
        "seed": seed,
        "extra": dict(extra or {}),
    }
    return atomic_torch_save(payload, path)


def load_image_generator(path: str | Path, device: str = "cpu") -> ImageGenerator:
    """The ImageGenerator stored in an image model file."""
    payload = read_calosim_file(path, IMAGE_MODEL_FORMAT, "cpu")
    try:
        model = build_model(payload["model_name"], payload["config"])
        model.load_state_dict(payload["state_dict"])
        return ImageGenerator(
            model, payload["model_name"], str(payload["benchmark"]), int(payload["n_classes"]),
            bool(payload["conditional"]), device=torch.device(device),
            info={"model_file": str(path), "seed": payload.get("seed")},
        )
    except (KeyError, TypeError, ValueError, RuntimeError, CalosimError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelFileError(f"{path}: corrupt image model file ({first_line})") from None
